-- Per token scalars in range: surprisal, entropy and both KLs are at least 0 (fp32 tolerance
-- 1e-5 nats) and finite; the tail mass is a probability.

select
    suite,
    size,
    step,
    seed,
    position,
    surprisal,
    entropy,
    kl_uniform,
    kl_unigram,
    tail_mass

from {{ ref('stg_token_stats') }}
where not (surprisal >= -1e-5 and surprisal < 'infinity'::double)
    or not (entropy >= -1e-5 and entropy < 'infinity'::double)
    or not (kl_uniform >= -1e-5 and kl_uniform < 'infinity'::double)
    or not (kl_unigram >= -1e-5 and kl_unigram < 'infinity'::double)
    or not (tail_mass >= -1e-5 and tail_mass <= 1 + 1e-5)
