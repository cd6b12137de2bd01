{#-
    on-run-start (dbt_project.yml): drops the SQL functions that earlier releases created for
    the quantile and EMA features (intermediate.mf_close_stats, intermediate.mf_ewm). Those
    features are now arithmetic on lag columns (int_prices_lags_compared), one window pass
    without a function call a row; a function left behind would only mislead a reader of
    the schema. Idempotent.
-#}
{% macro create_feature_functions() %}
drop function if exists intermediate.mf_close_stats(double precision[]);
drop function if exists intermediate.mf_ewm(double precision[], double precision);
{% endmacro %}
