{#-
    on-run-start: an incremental model with an enforced contract is rebuilt in full when its
    table's columns are not the contract's columns (a release added or renamed features):
    its table is dropped here, before anything is compiled, so the model is then built like
    a new one. Appending new columns would leave them NULL on old rows, and
    `on_schema_change: fail` would stop every run until someone passes --full-refresh by hand.

    Only for the models this `dbt run` or `dbt build` selects. Dropping cascades to the views
    over the table (universe_daily), as dbt's own full refresh of a table does; the same
    build recreates them. adapter.drop_relation() also forgets the table in dbt's relation
    cache, which is what is_incremental() and the materialization then read.
-#}
{% macro drop_tables_off_contract() %}
    {%- if execute and flags.WHICH in ['run', 'build'] -%}
        {%- for node in graph.nodes.values()
            if node.unique_id in selected_resources
            and node.resource_type == 'model'
            and node.config.materialized in incremental_materializations()
            and node.contract.enforced -%}
            {%- set existing = adapter.get_relation(node.database, node.schema, node.alias) -%}
            {%- if existing is not none -%}
                {%- set built = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
                {%- if built | sort != node.columns.keys() | list | sort -%}
                    {{ log("rebuilding " ~ existing ~ " in full: its columns differ from the contract", info=true) }}
                    {%- do adapter.drop_relation(existing) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
