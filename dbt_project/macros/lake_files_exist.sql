{#
    True when at least one file of the lake matches `relative_glob` (relative to the lake root,
    env SEEDCONV_LAKE as in models/staging/sources.yml). read_parquet fails on a glob that
    matches nothing, so the staging view of a table the lake gained later (token_pos) asks this
    first and reads an empty relation of the contract's columns from a lake written before it
    (icl_scores: complete_partition_rows does the same). At parse time (no database) it answers true, so the source is always
    in the graph.
#}
{% macro lake_files_exist(relative_glob) %}
    {% if not execute %}
        {{ return(true) }}
    {% endif %}
    {% set pattern = env_var('SEEDCONV_LAKE', '../warehouse/lake') ~ '/' ~ relative_glob %}
    {% set found = run_query("select count(*) from glob('" ~ (pattern | replace("'", "''")) ~ "')") %}
    {% set n_files = found.columns[0].values()[0] %}
    {% if n_files == 0 %}
        {{ log("seedconv: no lake files match " ~ pattern ~ "; reading it as empty", info=true) }}
    {% endif %}
    {{ return(n_files > 0) }}
{% endmacro %}
