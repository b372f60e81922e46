-- run once by the bootstrap
CREATE DATABASE wiki;
SET PASSWORD FOR 'root'@'localhost' = PASSWORD('1pPl@gQtz4fG+74');
FLUSH PRIVILEGES;
