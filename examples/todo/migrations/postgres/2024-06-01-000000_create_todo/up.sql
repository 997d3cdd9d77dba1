CREATE TABLE users (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE tasks (
    id TEXT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    done BOOLEAN NOT NULL
);
CREATE INDEX tasks_owner ON tasks (owner);
CREATE TABLE projects (
    id TEXT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL
);
CREATE INDEX projects_owner ON projects (owner);
