{#
    The rows of a checkpoint table of the lake (token_stats, pair_kl, icl_scores, fingerprints,
    weight_stats, weight_sketches, loglik) in complete partitions only: those whose manifest
    exists (stg_checkpoints). A partition without one is still being written, or was abandoned
    by a crash, and must be invisible downstream.

    The staging view reads an explicit list of the complete partitions' files, taken when the
    build creates it: no row is joined against stg_checkpoints (a semi join probes every row of
    the lake, a literal IN list costs as much again), and a query that names one partition (the
    per-partition models: macros/partitions.sql) opens that partition's file only. The list is
    the build's snapshot, as stg_checkpoints is: a partition completed after the build appears
    with the next one. With no such file (a lake written before the table existed), the view
    reads an empty relation of `empty_columns` ((name, type) pairs).
#}
{% macro complete_partition_rows(table, empty_columns) %}
    {%- set checkpoints = ref('stg_checkpoints') -%}
    {%- set files = [] -%}
    {%- if execute -%}
        {%- set pattern = env_var('SEEDCONV_LAKE', '../warehouse/lake') ~ '/checkpoints/suite=*/size=*/step=*/' ~ table ~ '.parquet' -%}
        {%- set query -%}
            select files.file
            from glob({{ sql_string(pattern) }}) as files
            inner join {{ checkpoints }} as checkpoints
                on replace(files.file, '\', '/')
                    = regexp_replace(replace(checkpoints.manifest_path, '\', '/'), 'manifest\.json$', '{{ table }}.parquet')
            order by files.file
        {%- endset -%}
        {%- for row in run_query(query) -%}
            {%- do files.append(row['file']) -%}
        {%- endfor -%}
        {%- if not files -%}
            {{ log("seedconv: no complete partition has " ~ table ~ ".parquet; reading it as empty", info=true) }}
        {%- endif -%}
    {%- endif -%}
    {%- if files -%}
        select *
        from read_parquet(
            [{% for file in files %}{{ sql_string(file) }}{{ ', ' if not loop.last }}{% endfor %}],
            hive_partitioning = true, union_by_name = true,
            hive_types = {'suite': VARCHAR, 'size': VARCHAR, 'step': BIGINT}
        )
    {%- else -%}
        select
            cast(null as varchar) as suite,
            cast(null as varchar) as size,
            cast(null as bigint) as step,
            {%- for name, type in empty_columns %}
            cast(null as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
            {%- endfor %}
        where false
    {%- endif -%}
{% endmacro %}
