-- Roles and databases of the docker-compose stack, run once by the postgres image on an empty
-- data directory (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
--
-- The same roles and databases as `marketflow db init` makes on a developer machine
-- (core/db.py): the owner role `marketflow`, the read-only roles `marketflow_analyst` and
-- `marketflow_api`, and the databases marketflow (data), airflow (Airflow's metadata) and mlflow
-- (MLflow's backend store), all owned by `marketflow`. Unlike the developer machine, every role
-- logs in over the network here, so each gets a password, read from the postgres container's
-- environment (psql's \getenv, PostgreSQL 15+). The schemas and grants are not made here: the
-- compose `init` service runs `marketflow db init`, which applies core/sql/*.sql.
-- Idempotent: running it again creates what is missing and resets the passwords.

\set ON_ERROR_STOP on

\getenv marketflow_password MARKETFLOW_DB_PASSWORD
\getenv api_password MARKETFLOW_API_DB_PASSWORD
\getenv analyst_password MARKETFLOW_ANALYST_DB_PASSWORD

-- An unset variable would otherwise reach the SQL below as the literal text :'name'.
\if :{?marketflow_password}
\else
\set marketflow_password ''
\endif
\if :{?api_password}
\else
\set api_password ''
\endif
\if :{?analyst_password}
\else
\set analyst_password ''
\endif

select :'marketflow_password' = '' or :'api_password' = '' or :'analyst_password' = ''
    as missing_password \gset
\if :missing_password
do $$
begin
    raise exception 'set MARKETFLOW_DB_PASSWORD, MARKETFLOW_API_DB_PASSWORD and '
        'MARKETFLOW_ANALYST_DB_PASSWORD in the postgres container (docker-compose.yml takes them from .env)';
end
$$;
\endif

-- Roles: login, no superuser, no createdb, no createrole (as `create role ... login` makes them).
select format('create role %I login', name)
from unnest(array['marketflow', 'marketflow_analyst', 'marketflow_api']) as name
where not exists (select from pg_roles where rolname = name) \gexec

alter role marketflow with login password :'marketflow_password';
alter role marketflow_api with login password :'api_password';
alter role marketflow_analyst with login password :'analyst_password';

-- Databases, owned by the pipeline's role (create database cannot run in a function: \gexec).
select format('create database %I owner marketflow', name)
from unnest(array['marketflow', 'airflow', 'mlflow']) as name
where not exists (select from pg_database where datname = name) \gexec

-- Only the owner needs Airflow's and MLflow's databases; the read-only roles keep the data one.
revoke connect on database airflow, mlflow from public;
