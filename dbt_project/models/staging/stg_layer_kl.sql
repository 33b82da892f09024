-- Cross-seed KL of the logit lens per layer, complete partitions only (macros/complete_partition_rows.sql);
-- an empty relation with these columns when no complete partition has the file (a lake written before it).

{% set lake_table = source('lake', 'layer_kl') %}

with source as (

    {{ complete_partition_rows('layer_kl', [
        ('layer', 'integer'), ('n_layers', 'integer'), ('seed_a', 'integer'), ('seed_b', 'integer'), ('position', 'integer'), ('kl', 'double')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(layer as integer) as layer,
        cast(n_layers as integer) as n_layers,
        cast(seed_a as integer) as seed_a,
        cast(seed_b as integer) as seed_b,
        cast(position as integer) as position,
        cast(kl as double) as kl

    from source

)

select * from renamed
