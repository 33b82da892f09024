-- KL from each seed's output to its logit lens per layer, complete partitions only; empty when no
-- complete partition has the file.

{% set lake_table = source('lake', 'layer_final_kl') %}

with source as (

    {{ complete_partition_rows('layer_final_kl', [
        ('layer', 'integer'), ('n_layers', 'integer'), ('seed', 'integer'), ('position', 'integer'), ('kl', 'double')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(layer as integer) as layer,
        cast(n_layers as integer) as n_layers,
        cast(seed as integer) as seed,
        cast(position as integer) as position,
        cast(kl as double) as kl

    from source

)

select * from renamed
