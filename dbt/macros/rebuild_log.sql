{#-
    monitoring.dbt_rebuilds: one row per incremental build of a mart (features_daily,
    labels_daily): the invocation, the first trade_date it rewrote (NULL: the whole table,
    'infinity': nothing was new) and whether data tests have passed on it since.

    It serves two purposes:
    - the model computes its update scope once, in a pre-hook, and reads it from here;
    - data tests on features_daily (and on universe_daily, a view over it) check only the
      rows that no passing test run has seen: rows on or after the earliest `rebuilt_from`
      not yet verified (their `where` config, var `unverified_features_rows` in
      dbt_project.yml; unverified_rows() below for singular tests). Rows before it are
      exactly the rows an earlier run's tests passed on, so this is the whole table's
      verdict at a fraction of the cost. A failed test leaves its rebuild unverified, so the
      next run checks those rows again. With no unverified rebuild (a manual `dbt test`),
      or with `--vars '{full_data_tests: true}'`, tests check the whole table.
-#}
{% macro create_rebuild_log() %}
create table if not exists monitoring.dbt_rebuilds (
    invocation_id text not null,
    model_name text not null,
    rebuilt_from date,
    started_at timestamptz not null default clock_timestamp(),
    tests_passed boolean,
    primary key (invocation_id, model_name)
);
{% endmacro %}


{#- Pre-hook of an incremental mart: record what this build rewrites (see above). -#}
{% macro record_rebuild(first_date_sql) %}
insert into monitoring.dbt_rebuilds (invocation_id, model_name, rebuilt_from)
select
    '{{ invocation_id }}',
    '{{ this.identifier }}',
{%- if is_incremental() %}
    coalesce({{ first_date_sql }}, 'infinity'::date)
{%- else %}
    null::date
{%- endif %}
on conflict (invocation_id, model_name) do update set rebuilt_from = excluded.rebuilt_from
{% endmacro %}


{#-
    The first trade_date this invocation's build of the mart `relation` rewrites, as recorded
    by its pre-hook (record_rebuild); computed on the spot when the pre-hook did not run
    (`dbt compile`).
-#}
{% macro recorded_rebuild_start(relation) -%}
coalesce(
    (
        select rebuilds.rebuilt_from
        from monitoring.dbt_rebuilds as rebuilds
        where rebuilds.invocation_id = '{{ invocation_id }}'
            and rebuilds.model_name = '{{ relation.identifier }}'
    ),
    {{ incremental_first_date(relation) }}
)
{%- endmacro %}


{#- The incremental models a model's rows come from: itself, or the parents of a view. -#}
{% macro _rebuilt_models(node) %}
    {%- set found = [] -%}
    {%- if node.config.materialized in incremental_materializations() -%}
        {%- do found.append(node.alias) -%}
    {%- elif node.config.materialized == 'view' -%}
        {%- for parent_id in node.depends_on.nodes -%}
            {%- set parent = graph.nodes.get(parent_id) -%}
            {%- if parent and parent.config.materialized in incremental_materializations() -%}
                {%- do found.append(parent.alias) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- do return(found) -%}
{% endmacro %}


{#-
    `relation` cut to the rows the data tests check, for a singular test: the predicate the
    generic tests of features_daily and universe_daily carry as their `where` config
    (var `unverified_features_rows`, dbt_project.yml), unless --vars '{full_data_tests: true}'.
-#}
{% macro unverified_rows(relation) -%}
(
    select *
    from {{ relation }}
{%- if not var('full_data_tests') %}
    where {{ var('unverified_features_rows') }}
{%- endif %}
)
{%- endmacro %}


{#-
    on-run-end: after a run whose data tests all passed, every rebuild they covered (the
    unverified rebuilds of each tested mart, its own and those started before this run) is
    verified. After a failure nothing is: the next run checks those rows again. (Two dbt
    runs on one database at once could verify each other's rebuilds; the pipeline runs one.)
-#}
{% macro verify_rebuilds(results) %}
    {%- if not execute -%}{%- do return('') -%}{%- endif -%}
    {%- set tests = results | selectattr('node.resource_type', 'equalto', 'test') | list -%}
    {%- set failed = tests | rejectattr('status', 'in', ['pass', 'warn']) | list -%}
    {%- if not tests or failed -%}{%- do return('select 1') -%}{%- endif -%}
    {%- set tested = [] -%}
    {%- for result in tests -%}
        {%- for parent_id in result.node.depends_on.nodes -%}
            {%- set parent = graph.nodes.get(parent_id) -%}
            {%- if parent and parent.resource_type == 'model' -%}
                {%- for name in _rebuilt_models(parent) -%}
                    {%- if name not in tested -%}{%- do tested.append(name) -%}{%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if not tested -%}{%- do return('select 1') -%}{%- endif -%}
update monitoring.dbt_rebuilds
set tests_passed = true
where model_name in ('{{ tested | join("', '") }}')
    and tests_passed is not true
    and (
        invocation_id = '{{ invocation_id }}'
{%- if run_started_at is not none %}
        or started_at < '{{ run_started_at.isoformat() }}'::timestamptz
{%- endif %}
    )
{% endmacro %}
