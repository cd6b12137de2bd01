{#-
    The table of the incremental model `model_name` when this run builds it incrementally,
    else none: what `is_incremental()` and `{{ this }}` say inside that model, for the
    ephemeral models compiled into it (dbt's is_incremental() looks at the model being
    compiled, and an ephemeral model is never incremental). Mirrors is_incremental(): the
    table exists, and neither the model's `full_refresh` config nor --full-refresh asks for
    a rebuild (a table whose columns left its contract is gone by now:
    macros/drop_tables_off_contract.sql).
-#}
{% macro incremental_target(model_name) %}
    {%- if not execute -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set node = graph.nodes['model.' ~ project_name ~ '.' ~ model_name] -%}
    {%- set relation = adapter.get_relation(node.database, node.schema, node.alias) -%}
    {%- set full_refresh = node.config.full_refresh -%}
    {%- if full_refresh is none -%}
        {%- set full_refresh = flags.FULL_REFRESH -%}
    {%- endif -%}
    {%- if relation is not none and relation.type == 'table'
        and node.config.materialized in incremental_materializations() and not full_refresh -%}
        {%- do return(relation) -%}
    {%- endif -%}
    {%- do return(none) -%}
{% endmacro %}
