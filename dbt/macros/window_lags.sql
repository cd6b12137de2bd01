{#-
    Comparisons of today's bar with each of the last n bars, spelled out over lag columns
    (`<kind>_lag_<k>`, k = 1..n-1 rows back; k = 0 is today's `adj_<kind>`). Constant-offset
    lags cost O(1) a row, so these run far faster than sorting every window.
-#}

{#- `lag(column, k) over window as <name>_lag_<k>` for k = 1..n: the last n values as columns. -#}
{% macro lag_columns(column, name, n, window) -%}
{%- for k in range(1, n + 1) %}
        lag({{ column }}, {{ k }}) over {{ window }} as {{ name }}_lag_{{ k }}
        {%- if not loop.last %},{% endif %}
{%- endfor %}
{%- endmacro %}

{#- Number of the last n values of adj_<kind> that compare `op` with today's (today included). -#}
{% macro count_lags(kind, relation, n, op) -%}
(
    ({{ relation }}.adj_{{ kind }} {{ op }} {{ relation }}.adj_{{ kind }})::integer
    {%- for k in range(1, n) %}
    + ({{ relation }}.{{ kind }}_lag_{{ k }} {{ op }} {{ relation }}.adj_{{ kind }})::integer
    {%- endfor %}
)
{%- endmacro %}

{#-
    Rows back to the most recent of the last n values of adj_<kind> that equals their
    `extreme` (greatest or least): 0 when today holds it.
-#}
{% macro rows_since(kind, relation, n, extreme) -%}
{%- set values = [relation ~ '.adj_' ~ kind] -%}
{%- for k in range(1, n) -%}
    {%- do values.append(relation ~ '.' ~ kind ~ '_lag_' ~ k) -%}
{%- endfor -%}
case {{ extreme }}({{ values | join(', ') }})
    {%- for value in values %}
    when {{ value }} then {{ loop.index0 }}
    {%- endfor %}
end
{%- endmacro %}
