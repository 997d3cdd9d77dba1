DROP TABLE projects;
DROP TABLE tasks;
DROP TABLE users;
