{#-
    materialized='incremental_in_slices': dbt's incremental materialization, except that a
    full build, or an incremental one that rewrites many rows (a rebuild from an early day),
    computes the model's per-symbol rows in N symbol slices at once, on N connections to
    the same database, then the rest of the query (per-day cross-sectional work) in one
    statement over their union. PostgreSQL runs a window query on one core, and every
    window of features_daily is partitioned by symbol, so slices by symbol give exactly the
    rows of the single statement.

    The model marks two places in its SQL:
    - in_symbol_slice(column): a predicate on the symbol of the rows read (true when the
      model runs as one statement);
    - end_of_per_symbol_rows(): after the CTE `features`, the last one whose rows depend on
      one symbol only. The statements of the slices are the compiled query up to that mark,
      then `select * from features`; the final one is everything after it, `features` being
      the union of the slices.
    config `slice_source`: the (ephemeral) model whose rows count how many each symbol has,
    to deal the symbols into slices of equal work.

    N: the env var MARKETFLOW_DBT_FEATURE_SLICES (core/dbt.py sets it from the settings: one
    per core, at most 16); 1 without the dblink extension (core/db.py). An incremental build
    runs in slices when it reads at least var `feature_slice_min_rows` (100,000) rows of its
    `slice_source` (a rebuild from an early day), else as one statement, as fast as before:
    N connections would cost more than they save.

    The slices run over dblink (dblink_send_query, then dblink_get_result on each): each
    writes an unlogged table <model>__dbt_slice_<i>, committed, which the final statement
    reads. They see what this build committed before them (the pre-hook's record of the
    rebuilt days), so they commit it first; their planner settings are copied from the
    session, which the pre-hooks set.
-#}

{% macro in_symbol_slice(column) -%}
(true /* symbol slice of {{ column }} */)
{%- endmacro %}


{% macro end_of_per_symbol_rows() -%}
/* end of per-symbol rows */
{%- endmacro %}


{#- The number of slices this build may use (see above). -#}
{% macro feature_slice_count() %}
    {%- set wanted = env_var('MARKETFLOW_DBT_FEATURE_SLICES', '1') | int -%}
    {%- if wanted <= 1 -%}{%- do return(1) -%}{%- endif -%}
    {%- set found = run_query("select count(*) from pg_extension where extname = 'dblink'") -%}
    {%- if found.columns[0].values()[0] == 0 -%}
        {{ log("no dblink extension: building " ~ this ~ " in one slice", info=true) }}
        {%- do return(1) -%}
    {%- endif -%}
    {%- do return(wanted) -%}
{% endmacro %}


{#- The compiled query of the model cut at end_of_per_symbol_rows(): [per-symbol, rest]. -#}
{% macro _split_at_per_symbol_end(sql) %}
    {%- set parts = sql.split('/* end of per-symbol rows */') -%}
    {%- if parts | length != 2 -%}
        {{ exceptions.raise_compiler_error(
            "incremental_in_slices: " ~ this ~ " must mark end_of_per_symbol_rows() once") }}
    {%- endif -%}
    {%- do return(parts) -%}
{% endmacro %}


{#- `sql` restricted to the symbols of slice `slice` of the table `slice_map`. -#}
{% macro _restrict_to_slice(sql, slice_map, slice) %}
    {%- set pattern = '\\(true /\\* symbol slice of ([A-Za-z0-9_."]+) \\*/\\)' -%}
    {%- if not modules.re.search(pattern, sql) -%}
        {{ exceptions.raise_compiler_error(
            "incremental_in_slices: " ~ this ~ " reads no in_symbol_slice() predicate") }}
    {%- endif -%}
    {%- set predicate = '(\\1 in (select slices.symbol from ' ~ slice_map
        ~ ' as slices where slices.slice = ' ~ slice ~ '))' -%}
    {%- do return(modules.re.sub(pattern, predicate, sql)) -%}
{% endmacro %}


{#- A table of this build's own, dropped when it ends. -#}
{% macro _slice_relation(suffix) %}
    {%- do return(api.Relation.create(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__dbt_' ~ suffix,
        type='table')) -%}
{% endmacro %}


{#-
    Runs the per-symbol part of the compiled `sql` in `slices` concurrent slices and returns
    the final statement: the rest of `sql`, over the union of the slices' tables (appended
    to `to_drop`, with the symbol map). `settings`: the session's planner settings (set by
    the pre-hooks), rows of (name, setting), for the slices' sessions.
-#}
{% macro _build_slices(sql, slices, settings, to_drop) %}
    {%- set parts = _split_at_per_symbol_end(sql) -%}
    {%- set source = '__dbt__cte__' ~ config.require('slice_source') -%}
    {%- set slice_map = _slice_relation('slice_map') -%}
    {%- set tables = [] -%}
    {%- for i in range(slices) -%}
        {%- do tables.append(_slice_relation('slice_' ~ i)) -%}
    {%- endfor -%}
    {%- do to_drop.extend(tables) -%}
    {%- do to_drop.append(slice_map) -%}

    {#-
        Symbols dealt to slices by their row count, largest first, back and forth (0..N-1,
        N-1..0, ...): equal work within a symbol's rows.
    -#}
    {%- call statement('slice_map') -%}
        {%- for table in to_drop %}
        drop table if exists {{ table }};
        {%- endfor %}
        create unlogged table {{ slice_map }} as
        {{ parts[0] }},
        symbol_rows as (
            select scoped.symbol, count(*) as n_rows
            from {{ source }} as scoped
            group by scoped.symbol
        ),
        dealt as (
            select
                symbol_rows.symbol,
                row_number() over (order by symbol_rows.n_rows desc, symbol_rows.symbol) - 1
                    as deal
            from symbol_rows
        )
        select
            dealt.symbol,
            case
                when (dealt.deal / {{ slices }}) % 2 = 0 then (dealt.deal % {{ slices }})::integer
                else ({{ slices }} - 1 - dealt.deal % {{ slices }})::integer
            end as slice
        from dealt;
    {%- endcall -%}
    {#- The slices' sessions see only what is committed: the map, the pre-hook's record. -#}
    {%- do adapter.commit() -%}

    {%- set conninfo = 'dbname=' ~ target.dbname ~ ' host=' ~ target.host ~ ' port=' ~ target.port
        ~ ' user=' ~ target.user -%}
    {%- set password = env_var('MARKETFLOW_DBT_PASSWORD', '') -%}
    {%- if password -%}{%- set conninfo = conninfo ~ ' password=' ~ password -%}{%- endif -%}

    {%- for i in range(slices) -%}
        {%- set name = 'mf_slice_' ~ i -%}
        {%- set statement_sql = 'create unlogged table ' ~ tables[i] ~ ' as '
            ~ _restrict_to_slice(parts[0], slice_map, i) ~ '\nselect * from features' -%}
        {%- set setup = [] -%}
        {%- for row in settings.rows -%}
            {%- do setup.append("set " ~ row[0] ~ " = '" ~ row[1] ~ "'") -%}
        {%- endfor -%}
        {%- do run_query(
            "select extensions.dblink_connect_u('" ~ name ~ "', $mf$" ~ conninfo ~ "$mf$);"
            ~ "select extensions.dblink_exec('" ~ name ~ "', $mf$" ~ setup | join('; ') ~ "$mf$);"
            ~ "select extensions.dblink_send_query('" ~ name ~ "', $mf_slice$"
            ~ statement_sql ~ "$mf_slice$)") -%}
    {%- endfor -%}

    {%- set errors = [] -%}
    {%- for i in range(slices) -%}
        {%- set name = 'mf_slice_' ~ i -%}
        {%- set result = run_query(
            "select count(*) from extensions.dblink_get_result('" ~ name ~ "', false) as done (status text);"
            ~ "select extensions.dblink_error_message('" ~ name ~ "')") -%}
        {%- set message = result.columns[0].values()[0] -%}
        {%- do run_query("select extensions.dblink_disconnect('" ~ name ~ "')") -%}
        {%- if message != 'OK' -%}
            {%- do errors.append('slice ' ~ i ~ ': ' ~ message) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if errors -%}
        {{ exceptions.raise_compiler_error(
            "incremental_in_slices: " ~ this ~ " failed in " ~ errors | join('; ')) }}
    {%- endif -%}
    {{ log("built " ~ this ~ "'s per-symbol rows in " ~ slices ~ " slices", info=true) }}

    {%- set union = [] -%}
    {%- for table in tables -%}
        {%- do union.append('select * from ' ~ table) -%}
    {%- endfor -%}
    {#-
        Not materialized: the per-day ranks read their few columns straight from the slices'
        tables, and the join back to the wide rows hashes the narrow ranks (the final
        statement runs with merge joins off) instead of sorting the wide rows on disk.
    -#}
    {%- do return('with features as not materialized (\n' ~ union | join('\nunion all\n')
        ~ '\n)\n' ~ parts[1]) -%}
{% endmacro %}


{#-
    Whether the incremental build of this model reads enough rows to run in slices: the rows
    of its `slice_source` (in an incremental build, the rebuilt days and the history their
    windows read).
-#}
{% macro _rebuild_is_large(sql) %}
    {%- set source = '__dbt__cte__' ~ config.require('slice_source') -%}
    {%- set result = run_query(_split_at_per_symbol_end(sql)[0]
        ~ '\nselect count(*) from ' ~ source) -%}
    {%- do return(result.columns[0].values()[0] >= var('feature_slice_min_rows', 100000)) -%}
{% endmacro %}


{% materialization incremental_in_slices, adapter='postgres' -%}

  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set temp_relation = make_temp_relation(target_relation) -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set backup_relation_type = 'table' if existing_relation is none else existing_relation.type -%}
  {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}

  {%- set unique_key = config.get('unique_key') -%}
  {%- set full_refresh_mode = existing_relation is none or should_full_refresh() or existing_relation.is_view -%}
  {%- set on_schema_change = incremental_validate_on_schema_change(config.get('on_schema_change'), default='ignore') -%}

  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
  {%- set grant_config = config.get('grants') -%}
  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
  {{ drop_relation_if_exists(preexisting_backup_relation) }}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- set to_drop = [] -%}
  {%- set slices = feature_slice_count() -%}
  {%- set in_slices = slices > 1 and (full_refresh_mode or _rebuild_is_large(sql)) -%}
  {%- if in_slices -%}
    {%- set settings = run_query(
        "select name, setting from pg_settings where name in ('enable_nestloop', 'jit', 'work_mem')") -%}
    {%- set build_sql = _build_slices(sql, slices, settings, to_drop) -%}
    {#- The commit before the slices ended the pre-hooks' `set local`: set them again. -#}
    {%- for row in settings.rows -%}
      {%- do run_query("set local " ~ row[0] ~ " = '" ~ row[1] ~ "'") -%}
    {%- endfor -%}
    {#-
        The final statement joins the wide rows to their narrow ranks: by hashing the ranks
        (about 80 bytes a row: 256MB holds 3M rows in one batch), not by sorting both sides.
    -#}
    {%- do run_query("set local enable_mergejoin = off; set local work_mem = '256MB'") -%}
  {%- else -%}
    {%- set build_sql = sql -%}
  {%- endif -%}

  {%- if existing_relation is none -%}
    {%- set main_sql = get_create_table_as_sql(False, target_relation, build_sql) -%}
    {%- set relation_for_indexes = target_relation -%}
  {%- elif full_refresh_mode -%}
    {%- set main_sql = get_create_table_as_sql(False, intermediate_relation, build_sql) -%}
    {%- set relation_for_indexes = intermediate_relation -%}
    {%- set need_swap = true -%}
  {%- else -%}
    {%- do run_query(get_create_table_as_sql(True, temp_relation, build_sql)) -%}
    {%- set relation_for_indexes = temp_relation -%}
    {%- set contract_config = config.get('contract') -%}
    {%- if not contract_config or not contract_config.enforced -%}
      {%- do adapter.expand_target_column_types(from_relation=temp_relation, to_relation=target_relation) -%}
    {%- endif -%}
    {%- set dest_columns = process_schema_changes(on_schema_change, temp_relation, existing_relation) -%}
    {%- if not dest_columns -%}
      {%- set dest_columns = adapter.get_columns_in_relation(existing_relation) -%}
    {%- endif -%}
    {%- set incremental_strategy = config.get('incremental_strategy') or 'default' -%}
    {%- set strategy_sql_macro_func = adapter.get_incremental_strategy_macro(context, incremental_strategy) -%}
    {%- set incremental_predicates = config.get('predicates', none) or config.get('incremental_predicates', none) -%}
    {%- set main_sql = strategy_sql_macro_func({
        'target_relation': target_relation, 'temp_relation': temp_relation, 'unique_key': unique_key,
        'dest_columns': dest_columns, 'incremental_predicates': incremental_predicates}) -%}
  {%- endif -%}

  {% call statement("main") %}
      {{ main_sql }}
  {% endcall %}

  {%- if full_refresh_mode -%}
    {%- do create_indexes(relation_for_indexes) -%}
  {%- endif -%}

  {%- if need_swap -%}
      {%- do adapter.rename_relation(target_relation, backup_relation) -%}
      {%- do adapter.rename_relation(intermediate_relation, target_relation) -%}
      {%- do to_drop.append(backup_relation) -%}
  {%- endif -%}

  {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode) -%}
  {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}
  {%- do persist_docs(target_relation, model) -%}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  -- `COMMIT` happens here
  {%- do adapter.commit() -%}

  {%- for rel in to_drop -%}
      {%- do adapter.drop_relation(rel) -%}
  {%- endfor -%}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}

{%- endmaterialization %}
