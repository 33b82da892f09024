{#
    `column_name` is unique within each partition (suite, size, step) of `model`, an incremental
    partition model (macros/partitions.sql): with the partition, the key of a per-context table.

    In a `dbt build` or `dbt run` it checks the partitions this invocation built: the rows of
    any other partition are those an earlier build checked, and a partition's rows are only ever
    replaced whole, so the test costs what the build wrote. `dbt test` checks every partition.
    One branch per partition with literal filters: DuckDB reads just its row groups and groups
    by the column with a perfect hash table.
#}
{% test unique_per_partition(model, column_name) %}

{%- set scope = partitions_built_now(model) -%}
{%- if scope is none -%}
    {%- set scope = recorded_partitions(model) -%}
{%- endif -%}

{% if scope is none %}
select suite, size, step, {{ column_name }}, count(*) as n_rows
from {{ model }}
group by suite, size, step, {{ column_name }}
having count(*) > 1
{% else %}
{% for p in scope or [none] %}
select {{ partition_columns(p) }}, {{ column_name }}, count(*) as n_rows
from {{ model }}
where {{ partition_filter(p) }}
group by {{ column_name }}
having count(*) > 1
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}

{% endtest %}
