-- Count sketches of each seed's whole weight vector, of complete partitions only
-- (macros/complete_partition_rows.sql). A lake written before weight sketches were extracted
-- reads as no rows, with the contract's columns. The sketch is cast to double here, so squared
-- distances downstream are taken in double.

{% set lake_table = source('lake', 'weight_sketches') %}

with source as (

    {{ complete_partition_rows('weight_sketches', [('seed', 'integer'), ('sketch', 'float[]')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(sketch as double[]) as sketch

    from source

)

select * from renamed
