{#
    Every seed of a complete partition's manifest has exactly one row of `model` at every
    `key` (a context's position, an ICL sequence) that the partition holds, and no seed outside
    the manifest has any: so every seed's numbers are over the same items. Doubles as the
    uniqueness test of (suite, size, step, seed, key).
#}
{% test every_manifest_seed_once(model, key) %}

with checkpoints as (

    select suite, size, step, seeds from {{ ref('stg_checkpoints') }}

),

rows_ as (

    select suite, size, step, seed, {{ key }} as item from {{ model }}

),

items as (

    select distinct suite, size, step, item from rows_

),

expected as (

    select
        items.suite,
        items.size,
        items.step,
        unnest(checkpoints.seeds) as seed,
        items.item

    from items
    inner join checkpoints
        on items.suite = checkpoints.suite
        and items.size = checkpoints.size
        and items.step = checkpoints.step

),

actual as (

    select suite, size, step, seed, item, count(*) as n_rows
    from rows_
    group by suite, size, step, seed, item

)

select
    coalesce(expected.suite, actual.suite) as suite,
    coalesce(expected.size, actual.size) as size,
    coalesce(expected.step, actual.step) as step,
    coalesce(expected.seed, actual.seed) as seed,
    coalesce(expected.item, actual.item) as item,
    expected.seed is not null as seed_in_manifest,
    coalesce(actual.n_rows, 0) as n_rows

from expected
full outer join actual
    on expected.suite = actual.suite
    and expected.size = actual.size
    and expected.step = actual.step
    and expected.seed = actual.seed
    and expected.item = actual.item
where expected.seed is null
    or coalesce(actual.n_rows, 0) <> 1

{% endtest %}
