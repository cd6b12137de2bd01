{#-
    Use a folder's `+schema` as the schema name itself (`marts`, not `public_marts`):
    analysts and grants.sql address `marts.features_daily` directly.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
