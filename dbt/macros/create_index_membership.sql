{#-
    reference.index_membership(symbol, valid_from, valid_to): point-in-time index membership,
    supplied by the user (see docs/features.md for loading a CSV into it). Empty means "no
    index": universe_daily then applies only its price, liquidity and history rules.
    valid_to NULL means still a member; both ends are inclusive.
-#}
{% macro create_index_membership() %}
create schema if not exists reference;

create table if not exists reference.index_membership (
    symbol text not null,
    valid_from date not null,
    valid_to date,
    primary key (symbol, valid_from),
    check (valid_to is null or valid_to >= valid_from)
);
{% endmacro %}
