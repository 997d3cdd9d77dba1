CREATE TABLE users (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash VARCHAR(64) NOT NULL UNIQUE
);
CREATE TABLE tasks (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    owner VARCHAR(255) NOT NULL,
    title TEXT NOT NULL,
    done BOOLEAN NOT NULL
);
CREATE INDEX tasks_owner ON tasks (owner);
CREATE TABLE projects (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    owner VARCHAR(255) NOT NULL,
    name TEXT NOT NULL
);
CREATE INDEX projects_owner ON projects (owner);
