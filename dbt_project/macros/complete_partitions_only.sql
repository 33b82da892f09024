{#
    A filter for rows of the lake's checkpoint tables: keeps only partitions whose manifest
    exists (stg_checkpoints). A partition without one is still being written, or was abandoned
    by a crash, and must be invisible downstream.
#}
{% macro complete_partitions_only(alias) %}
    exists (
        select 1
        from {{ ref('stg_checkpoints') }} as complete_partitions
        where complete_partitions.suite = {{ alias }}.suite
            and complete_partitions.size = {{ alias }}.size
            and complete_partitions.step = {{ alias }}.step
    )
{% endmacro %}
