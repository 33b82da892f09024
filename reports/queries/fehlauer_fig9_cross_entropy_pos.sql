-- Fehlauer et al. (2025), Figure 9 (centre), every suite: the models' mean surprisal per size and
-- step for the tags of Figure 3 (centre): DT, PRP, IN, MD, nouns, verbs, JJ.
select suite, size, n_params, step, level,
       case level when 'DT' then 1 when 'PRP' then 2 when 'IN' then 3 when 'MD' then 4
                  when 'noun' then 5 when 'verb' then 6 when 'JJ' then 7 end as level_order,
       case when level in ('DT', 'PRP', 'IN', 'MD') then 'function' else 'content' end as word_class,
       n_contexts, cross_entropy
from mart_conditional_convergence
where (condition = 'pos' and level in ('DT', 'PRP', 'IN', 'MD', 'JJ'))
   or (condition = 'pos_group' and level in ('noun', 'verb'))
order by suite, n_params, level_order, step;
