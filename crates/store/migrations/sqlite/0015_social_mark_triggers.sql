-- Likes and collects move their article's counter in the same statement: a trigger on the
-- mark tables, so setting or clearing a mark is one statement (atomic on its own) whether it
-- runs alone or inside the embedded writer's batch. Only a row really inserted or deleted
-- fires, so a second like changes nothing.
create trigger article_likes_counted after insert on article_likes
begin
    update articles set like_count = like_count + 1 where id = new.article_id;
end;
create trigger article_likes_uncounted after delete on article_likes
begin
    update articles set like_count = like_count - 1 where id = old.article_id;
end;
create trigger article_collects_counted after insert on article_collects
begin
    update articles set collect_count = collect_count + 1 where id = new.article_id;
end;
create trigger article_collects_uncounted after delete on article_collects
begin
    update articles set collect_count = collect_count - 1 where id = old.article_id;
end;
