-- Per seed and context scalars of complete partitions only: rows of a partition without a
-- manifest (still being written, or abandoned) are invisible downstream
-- (macros/complete_partition_rows.sql).

{% set lake_table = source('lake', 'token_stats') %}

with source as (

    {{ complete_partition_rows('token_stats', [
        ('seed', 'integer'), ('position', 'integer'), ('surprisal', 'float'), ('entropy', 'float'),
        ('kl_uniform', 'float'), ('kl_unigram', 'float'), ('topk_ids', 'integer[]'),
        ('topk_logprobs', 'float[]'), ('tail_mass', 'float')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(position as integer) as position,
        cast(surprisal as double) as surprisal,
        cast(entropy as double) as entropy,
        cast(kl_uniform as double) as kl_uniform,
        cast(kl_unigram as double) as kl_unigram,
        cast(topk_ids as integer[]) as topk_ids,
        cast(topk_logprobs as double[]) as topk_logprobs,
        cast(tail_mass as double) as tail_mass

    from source

)

select * from renamed
