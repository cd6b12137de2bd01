{#-
    dbt's is_incremental(), for the incremental materializations of this project: dbt's own
    answers false for any materialization not named 'incremental', so a model built by
    incremental_in_slices (macros/build_in_slices.sql) and its pre-hook (record_rebuild)
    would believe every build a full one. A macro of the root project overrides dbt's.
-#}
{% macro incremental_materializations() %}
    {%- do return(['incremental', 'incremental_in_slices']) -%}
{% endmacro %}


{% macro is_incremental() %}
    {%- if not execute -%}
        {%- do return(false) -%}
    {%- endif -%}
    {%- set relation = adapter.get_relation(this.database, this.schema, this.table) -%}
    {%- do return(relation is not none
        and relation.type == 'table'
        and model.config.materialized in incremental_materializations()
        and not should_full_refresh()) -%}
{% endmacro %}
