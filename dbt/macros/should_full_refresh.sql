{#-
    dbt's own rule (the model's `full_refresh` config, else --full-refresh), plus one of ours:
    an incremental model with an enforced contract is rebuilt in full when the existing
    table's columns are not the contract's columns (a release added or renamed features).
    Appending new columns would leave them NULL on old rows, and `on_schema_change: fail`
    would stop every run until someone passes --full-refresh by hand.
-#}
{% macro should_full_refresh() %}
    {%- set config_full_refresh = config.get('full_refresh') -%}
    {%- if config_full_refresh is none -%}
        {%- set config_full_refresh = flags.FULL_REFRESH -%}
    {%- endif -%}
    {%- if not config_full_refresh and execute
        and model.config.materialized == 'incremental'
        and model.config.get('contract', {}).get('enforced') -%}
        {%- set existing = adapter.get_relation(this.database, this.schema, this.table) -%}
        {%- if existing is not none -%}
            {%- set built = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
            {%- set wanted = model.columns.keys() | list -%}
            {%- if built | sort != wanted | sort -%}
                {{ log("rebuilding " ~ this ~ " in full: its columns differ from the contract", info=true) }}
                {%- set config_full_refresh = true -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {%- do return(config_full_refresh) -%}
{%- endmacro %}
