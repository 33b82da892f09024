-- Fehlauer et al. (2025), Figure 3 (centre), every suite: expected convergence per size and step
-- for the tags the paper contrasts: function words DT, PRP, IN and MD against content words,
-- nouns and verbs (every tag of the group) and adjectives (JJ). word_class names which is which.
select suite, size, n_params, step, level,
       case level when 'DT' then 1 when 'PRP' then 2 when 'IN' then 3 when 'MD' then 4
                  when 'noun' then 5 when 'verb' then 6 when 'JJ' then 7 end as level_order,
       case when level in ('DT', 'PRP', 'IN', 'MD') then 'function' else 'content' end as word_class,
       n_contexts, expected_conv, conv_std
from mart_conditional_convergence
where (condition = 'pos' and level in ('DT', 'PRP', 'IN', 'MD', 'JJ'))
   or (condition = 'pos_group' and level in ('noun', 'verb'))
order by suite, n_params, level_order, step;
