{#
    The training regime of a checkpoint (McEntire 2026, eq. 2) from `column`, the cosine
    similarity s_t of its fingerprint to the same seed's fingerprint it is compared with (eq. 1):

        stable      s_t >  tau_high    (dbt var regime_tau_high, default 0.999)
        chaotic     s_t <  tau_low     (dbt var regime_tau_low, default 0.997)
        transition  otherwise, tau_low <= s_t <= tau_high

    Both comparisons are strict, as the paper's: a similarity equal to tau_high is transition.
    NULL where the similarity is NULL (nothing to compare with) or NaN (a degenerate fingerprint,
    which the marts' range tests fail on): DuckDB orders NaN above every number, so without that
    guard it would read as stable. The thresholds are configured, not percentiles of the run
    itself; a suite may have its own (dbt var regime_suites), so `suite_column` names the column
    holding each row's suite. docs/architecture.md derives the defaults from the paper's Table 4.
#}
{% macro fingerprint_regime(column, suite_column='suite') -%}
    (case
        when {{ column }} is null or isnan({{ column }}) then null
        when {{ column }} > {{ regime_value('tau_high', suite_column) }} then 'stable'
        when {{ column }} < {{ regime_value('tau_low', suite_column) }} then 'chaotic'
        else 'transition'
    end)
{%- endmacro %}


{% macro regime_value(key, suite_column='suite') -%}
    {#- A SQL expression for one regime setting (tau_low, tau_high or gap) of each row's suite:
        the literal default, or a CASE over the suites of regime_suites that set their own. -#}
    {%- set settings = regime_settings() -%}
    {%- set default = settings.default[key] -%}
    {%- set own = [] -%}
    {%- for suite, values in settings.suites.items() | sort -%}
        {%- if values[key] != default -%}{%- do own.append((suite, values[key])) -%}{%- endif -%}
    {%- endfor -%}
    {%- if own -%}
        (case {{ suite_column }}
        {%- for suite, value in own %} when '{{ suite | replace("'", "''") }}' then {{ regime_literal(key, value) }}{% endfor %}
        else {{ regime_literal(key, default) }} end)
    {%- else -%}
        {{ regime_literal(key, default) }}
    {%- endif -%}
{%- endmacro %}


{% macro regime_literal(key, value) -%}
    {%- if key == 'gap' -%}cast({{ value }} as bigint){%- else -%}cast({{ value }} as double){%- endif -%}
{%- endmacro %}


{% macro regime_settings() %}
    {#- The regime settings, checked: {'default': {tau_low, tau_high, gap}, 'suites': {suite: the
        same, with the suite's own values over the defaults}}, or a compile error naming the var. -#}
    {%- for old, new in [('regime_chaotic_below', 'regime_tau_low'), ('regime_stable_from', 'regime_tau_high')] -%}
        {%- if var(old, none) is not none -%}
            {{ exceptions.raise_compiler_error(
                "dbt var " ~ old ~ " is now " ~ new ~ " (McEntire 2026, eq. 2; both comparisons strict)") }}
        {%- endif -%}
    {%- endfor -%}
    {%- set default = regime_values_checked(
        'dbt var ', {'regime_tau_low': var('regime_tau_low'), 'regime_tau_high': var('regime_tau_high'),
                     'regime_gap': var('regime_gap')}) -%}
    {%- set raw_suites = var('regime_suites', {}) -%}
    {%- if raw_suites is none -%}{%- set raw_suites = {} -%}{%- endif -%}
    {%- if raw_suites is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "dbt var regime_suites must map suite names to their own regime_tau_low, regime_tau_high or "
            ~ "regime_gap, got " ~ raw_suites) }}
    {%- endif -%}
    {%- set suites = {} -%}
    {%- for suite, own in raw_suites.items() -%}
        {%- if own is not mapping -%}
            {{ exceptions.raise_compiler_error(
                "dbt var regime_suites." ~ suite ~ " must be a mapping of regime_tau_low, regime_tau_high or "
                ~ "regime_gap, got " ~ own) }}
        {%- endif -%}
        {%- for key in own -%}
            {%- if key not in ('regime_tau_low', 'regime_tau_high', 'regime_gap') -%}
                {{ exceptions.raise_compiler_error(
                    "dbt var regime_suites." ~ suite ~ " has an unknown key " ~ key
                    ~ "; a suite may set regime_tau_low, regime_tau_high and regime_gap") }}
            {%- endif -%}
        {%- endfor -%}
        {%- set merged = {'regime_tau_low': own.get('regime_tau_low', default.tau_low),
                          'regime_tau_high': own.get('regime_tau_high', default.tau_high),
                          'regime_gap': own.get('regime_gap', default.gap)} -%}
        {%- do suites.update({suite: regime_values_checked('dbt var regime_suites.' ~ suite ~ '.', merged)}) -%}
    {%- endfor -%}
    {{ return({'default': default, 'suites': suites}) }}
{% endmacro %}


{% macro regime_values_checked(prefix, raw) %}
    {#- tau_low, tau_high as floats and gap as an integer, checked; `prefix` names them in errors -#}
    {%- set values = {} -%}
    {%- for name in ('regime_tau_low', 'regime_tau_high') -%}
        {%- set given = raw[name] -%}
        {%- if given is boolean or given is none -%}
            {{ exceptions.raise_compiler_error(prefix ~ name ~ " must be a number, got " ~ given) }}
        {%- endif -%}
        {%- set value = (given | string | trim | float(default=none)) -%}
        {%- if value is none or value != value or value > 1e308 or value < -1e308 -%}
            {{ exceptions.raise_compiler_error(prefix ~ name ~ " must be a finite number, got " ~ given) }}
        {%- endif -%}
        {%- do values.update({name: value}) -%}
    {%- endfor -%}
    {%- if values['regime_tau_low'] > values['regime_tau_high'] -%}
        {{ exceptions.raise_compiler_error(
            prefix ~ "regime_tau_low (" ~ values['regime_tau_low'] ~ ") exceeds " ~ prefix ~ "regime_tau_high ("
            ~ values['regime_tau_high'] ~ "): a similarity between them would be both stable and chaotic") }}
    {%- endif -%}
    {%- set gap = raw['regime_gap'] -%}
    {%- set gap_number = none if gap is boolean or gap is none else (gap | string | trim | int(default=-1)) -%}
    {%- if gap_number is none or gap_number < 1 or (gap | string | trim) != (gap_number | string) -%}
        {{ exceptions.raise_compiler_error(
            prefix ~ "regime_gap must be a whole number of training steps, at least 1, got " ~ gap) }}
    {%- endif -%}
    {{ return({'tau_low': values['regime_tau_low'], 'tau_high': values['regime_tau_high'], 'gap': gap_number}) }}
{% endmacro %}
