{#-
    SQL helpers for features that PostgreSQL has no window function for: quantiles
    (percentile_cont is an ordered-set aggregate, not a window function) and exponentially
    weighted means. They take the array of the last rows (array_agg over a window ending at
    the current row, oldest first) and are exact: no sampling, no approximation. Created
    on-run-start (dbt_project.yml), immutable and parallel safe, in the `intermediate` schema.

    mf_close_stats(closes) sorts the last 60 closes once; filtering the sorted list by age
    gives every shorter window sorted too. It returns, for each window n of 5, 10, 20, 30, 60
    (in that order), the 0.2 and 0.8 quantiles with linear interpolation between order
    statistics (percentile_cont, numpy/pandas "linear": s[lo] + (h - floor h) * (s[lo + 1] -
    s[lo]), h = q (n - 1)), then the 12- and 26-span EMAs: sum(w_k close[t-k]) / sum(w_k),
    w_k = (1 - 2 / (span + 1))^k over the whole array. Entries of a window longer than the
    array are meaningless: callers NULL them by history_days.
    mf_ewm(vals, alpha) is that weighted mean for any array and alpha.
    One call a row: a SQL function call costs more than the sort itself.
-#}
{% macro create_feature_functions() %}
{%- set windows = var('feature_windows') -%}
create schema if not exists intermediate;

create or replace function intermediate.mf_close_stats(
    closes double precision[]
) returns double precision[]
language sql
immutable
parallel safe
as $fn$
    with by_value as (
        select
            w.value,
            cardinality(closes) - w.position as age
        from unnest(closes) with ordinality as w (value, position)
        order by w.value
    ),

    sorted as (
        select
        {%- for n in windows %}
            array_agg(by_value.value) filter (where by_value.age < {{ n }}) as last_{{ n }},
        {%- endfor %}
            sum(by_value.value * power(11.0::double precision / 13, by_value.age))
            / sum(power(11.0::double precision / 13, by_value.age)) as ema_12,
            sum(by_value.value * power(25.0::double precision / 27, by_value.age))
            / sum(power(25.0::double precision / 27, by_value.age)) as ema_26
        from by_value
    )

    select array[
    {%- for n in windows %}
        {%- for q in [0.2, 0.8] %}
            {%- set h = q * (n - 1) %}
            {%- set lo = h | int %}
        sorted.last_{{ n }}[{{ lo + 1 }}]
        + {{ h - lo }}::double precision
        * (sorted.last_{{ n }}[{{ lo + 2 }}] - sorted.last_{{ n }}[{{ lo + 1 }}]),
        {%- endfor %}
    {%- endfor %}
        sorted.ema_12,
        sorted.ema_26
    ]
    from sorted
$fn$;

create or replace function intermediate.mf_ewm(
    vals double precision[],
    alpha double precision
) returns double precision
language sql
immutable
parallel safe
as $fn$
    select
        sum(w.value * power(1 - alpha, cardinality(vals) - w.position))
        / sum(power(1 - alpha, cardinality(vals) - w.position))
    from unnest(vals) with ordinality as w (value, position)
$fn$;
{% endmacro %}
