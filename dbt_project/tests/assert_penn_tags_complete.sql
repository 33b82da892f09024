-- The penn_tags seed holds the 45 Penn Treebank tags: 36 word tags and 9 punctuation tags
-- (# $ '' ( ) , . : ``), every one of which survived loading as text (none turned NULL).

select
    count(*) as n_tags,
    count(*) filter (where pos_group = 'punctuation') as n_punctuation,
    count(*) filter (where tag in ('#', '$', '''''', '(', ')', ',', '.', ':', '``')) as n_punctuation_found

from {{ ref('penn_tags') }}
having count(*) <> 45
    or count(*) filter (where pos_group = 'punctuation') <> 9
    or count(*) filter (where tag in ('#', '$', '''''', '(', ')', ',', '.', ':', '``')) <> 9
