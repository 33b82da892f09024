-- Table 1, every suite: the token types with the lowest, middle and highest mean KL between seeds
-- at each size's last step, ranked within each group.
select suite, size, step, rank_group, rank, token_text, n_occurrences, mean_kl
from mart_token_rankings
order by suite, n_params, case rank_group when 'lowest' then 0 when 'middle' then 1 else 2 end, rank;
