-- The distribution marts' percentiles never decrease: per row of int_pair_distribution (every
-- seed pair and the pooled row), KL from its 0.1 % to its maximum and from 0 up, delta_p from
-- its minimum to its maximum. 1e-12 of slack for interpolation's rounding between equal values.

{% set kl_columns = [] %}
{% for name, _ in kl_percentiles() %}{% do kl_columns.append('kl_' ~ name) %}{% endfor %}
{% do kl_columns.append('kl_max') %}
{% set delta_p_columns = ['delta_p_min'] %}
{% for name, _ in delta_p_percentiles() %}{% do delta_p_columns.append('delta_p_' ~ name) %}{% endfor %}
{% do delta_p_columns.append('delta_p_max') %}

select *
from {{ ref('int_pair_distribution') }}
where not coalesce(
    kl_p0_1 >= -1e-5
    {%- for columns in (kl_columns, delta_p_columns) %}
    {%- for column in columns[1:] %}
    and {{ column }} >= {{ columns[loop.index0] }} - 1e-12
    {%- endfor %}
    {%- endfor %}
    and delta_p_min >= -1 and delta_p_max <= 1,
    false)
