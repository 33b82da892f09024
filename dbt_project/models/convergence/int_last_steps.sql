-- The last complete checkpoint of each (suite, size): where final surprisal and the token
-- rankings are read.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

last_steps as (

    select
        suite,
        size,
        max(step) as last_step

    from checkpoints
    group by suite, size

)

select * from last_steps
