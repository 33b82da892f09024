{#
    The training regime of a checkpoint (McEntire 2026) from `column`, the cosine similarity of
    its fingerprint to the same seed's previous checkpoint:

        chaotic     similarity <  var('regime_chaotic_below')   (default 0.9)
        stable      similarity >= var('regime_stable_from')     (default 0.99)
        transition  otherwise

    NULL where the similarity is NULL (a seed's first checkpoint) or NaN (a degenerate
    fingerprint, which the marts' range tests fail on): DuckDB orders NaN above every number, so
    without that guard it would read as stable. The thresholds are configured (dbt vars), not
    percentiles of the run itself, and checked: numbers with chaotic_below <= stable_from.
#}
{% macro fingerprint_regime(column) -%}
    {%- set bounds = regime_thresholds() -%}
    (case
        when {{ column }} is null or isnan({{ column }}) then null
        when {{ column }} < cast({{ bounds.chaotic_below }} as double) then 'chaotic'
        when {{ column }} >= cast({{ bounds.stable_from }} as double) then 'stable'
        else 'transition'
    end)
{%- endmacro %}


{% macro regime_thresholds() %}
    {#- The two thresholds as floats, or a compile error naming the bad var -#}
    {%- set values = {} -%}
    {%- for name in ('regime_chaotic_below', 'regime_stable_from') -%}
        {%- set raw = var(name) -%}
        {%- if raw is boolean or raw is none -%}
            {{ exceptions.raise_compiler_error("dbt var " ~ name ~ " must be a number, got " ~ raw) }}
        {%- endif -%}
        {%- set value = (raw | string | trim | float(default=none)) -%}
        {%- if value is none or value != value or value > 1e308 or value < -1e308 -%}
            {{ exceptions.raise_compiler_error("dbt var " ~ name ~ " must be a finite number, got " ~ raw) }}
        {%- endif -%}
        {%- do values.update({name: value}) -%}
    {%- endfor -%}
    {%- if values['regime_chaotic_below'] > values['regime_stable_from'] -%}
        {{ exceptions.raise_compiler_error(
            "dbt var regime_chaotic_below (" ~ values['regime_chaotic_below'] ~ ") exceeds regime_stable_from ("
            ~ values['regime_stable_from'] ~ "): a similarity can not be both chaotic and stable") }}
    {%- endif -%}
    {{ return({'chaotic_below': values['regime_chaotic_below'], 'stable_from': values['regime_stable_from']}) }}
{% endmacro %}
