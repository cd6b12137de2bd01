{#-
    monitoring.dbt_rebuilds: one row per incremental build of a mart (features_daily,
    labels_daily): the invocation, the first trade_date it rewrote (NULL: the whole table,
    'infinity': nothing was new) and whether data tests have passed on it since.

    It serves two purposes:
    - the model computes its update scope once, in a pre-hook, and reads it from here;
    - data tests on an incremental mart (and on views over one) check only the rows that no
      passing test run has seen: rows on or after the earliest `rebuilt_from` not yet
      verified. Rows before it are exactly the rows an earlier run's tests passed on, so
      this is the whole table's verdict at a fraction of the cost. A failed test leaves its
      rebuild unverified, so the next run checks those rows again. With no unverified
      rebuild (a manual `dbt test`), or with `--vars '{full_data_tests: true}'`, tests check
      the whole table.
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
    The first trade_date this invocation's build of the current model rewrites, as recorded
    by record_rebuild(); computed on the spot when the pre-hook did not run (`dbt compile`).
-#}
{% macro recorded_rebuild_start(first_date_sql) -%}
coalesce(
    (
        select rebuilds.rebuilt_from
        from monitoring.dbt_rebuilds as rebuilds
        where rebuilds.invocation_id = '{{ invocation_id }}'
            and rebuilds.model_name = '{{ this.identifier }}'
    ),
    {{ first_date_sql }}
)
{%- endmacro %}


{#- The incremental models a relation's rows come from: itself, or the parents of a view. -#}
{% macro _rebuilt_models(relation) %}
    {%- set found = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model'
            and node.schema == relation.schema and node.alias == relation.identifier -%}
            {%- if node.config.materialized == 'incremental' -%}
                {%- do found.append(node.alias) -%}
            {%- elif node.config.materialized == 'view' -%}
                {%- for parent_id in node.depends_on.nodes -%}
                    {%- set parent = graph.nodes.get(parent_id) -%}
                    {%- if parent and parent.config.materialized == 'incremental' -%}
                        {%- do found.append(parent.alias) -%}
                    {%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- do return(found) -%}
{% endmacro %}


{#-
    SQL for the first trade_date the data tests of `model_names` must check (see above):
    '-infinity' for the whole table.
-#}
{% macro unverified_since(model_names) -%}
{%- set since = none -%}
{%- if execute and model_names and not var('full_data_tests', false) -%}
    {#- A literal, read when the test runs: the planner then reads the few rows through the
        trade_date index instead of scanning the table for a value it cannot see. -#}
    {%- set found = run_query(
        "select min(coalesce(rebuilt_from, '-infinity'::date))::text from monitoring.dbt_rebuilds"
        ~ " where tests_passed is not true and model_name in ('" ~ model_names | join("', '") ~ "')"
    ) -%}
    {%- set since = found.columns[0].values()[0] if found and found.rows | length else none -%}
{%- endif -%}
'{{ since if since is not none else "-infinity" }}'::date
{%- endmacro %}


{#- `relation` cut to the rows its tests must check, for a singular test. -#}
{% macro unverified_rows(relation, model_names=none) -%}
(
    select *
    from {{ relation }}
    where trade_date >= {{ unverified_since(model_names if model_names is not none else _rebuilt_models(relation)) }}
)
{%- endmacro %}


{#-
    dbt's generic tests read their model through get_where_subquery(): keep its `where`
    config, and cut a mart that has rebuild rows to its unverified rows.
-#}
{% macro default__get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set models = _rebuilt_models(relation) -%}
    {%- if models and not var('full_data_tests', false) -%}
        {%- do conditions.append('trade_date >= ' ~ unverified_since(models)) -%}
    {%- endif -%}
    {%- if config.get('where', '') -%}
        {%- do conditions.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
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
                {%- for name in _rebuilt_models(api.Relation.create(schema=parent.schema, identifier=parent.alias)) -%}
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
