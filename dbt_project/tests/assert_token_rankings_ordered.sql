-- Token rankings are a ranking: per (suite, size) the ranks run 1..n_ranked, mean_kl never
-- decreases with rank, every ranked type occurs at least ranking_min_count times, and each
-- rank_group holds min(ranking_group_size, what is left) types.

{% set min_count = var('ranking_min_count', 3) | int %}
{% set group_size = var('ranking_group_size', 10) | int %}

with rankings as (

    select
        *,
        lag(mean_kl) over (partition by suite, size order by rank) as previous_mean_kl

    from {{ ref('mart_token_rankings') }}

),

per_ranking as (

    select
        suite,
        size,
        count(*) as n_rows,
        max(rank) as max_rank,
        min(n_ranked) as min_n_ranked,
        max(n_ranked) as max_n_ranked,
        count(*) filter (where mean_kl < previous_mean_kl) as n_out_of_order,
        count(*) filter (where n_occurrences < {{ min_count }}) as n_too_rare,
        count(*) filter (where rank_group = 'lowest') as n_lowest,
        count(*) filter (where rank_group = 'highest') as n_highest

    from rankings
    group by suite, size

)

select *
from per_ranking
where max_rank <> n_rows
    or min_n_ranked <> n_rows
    or max_n_ranked <> n_rows
    or n_out_of_order > 0
    or n_too_rare > 0
    or n_lowest <> least({{ group_size }}, n_rows)
    or n_highest <> least({{ group_size }}, n_rows - least({{ group_size }}, n_rows))
