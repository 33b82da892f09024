-- Log-likelihood vectors (Kishino et al. 2026) of complete partitions only: per seed and text, the
-- natural-log probability of the whole text (macros/complete_partition_rows.sql). A lake
-- written before log-likelihoods were extracted reads as no rows, with the contract's columns.

{% set lake_table = source('lake', 'loglik') %}

with source as (

    {{ complete_partition_rows('loglik', [
        ('seed', 'integer'), ('text_id', 'integer'), ('logprob', 'double'), ('n_tokens', 'integer')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(text_id as integer) as text_id,
        cast(logprob as double) as logprob,
        cast(n_tokens as integer) as n_tokens

    from source

)

select * from renamed
