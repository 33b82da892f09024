{#
    Every row of `model` satisfies `expression` (a SQL boolean over its columns); the rows that
    do not are the failures.
#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not coalesce({{ expression }}, false)

{% endtest %}
