-- Where each stream's data begins. The quality role judges every source (a topic, HTTP) on its
-- own clock: history posted beside live traffic is judged over its own span, and a live source
-- is not judged over the empty stretch between older history and its first event. Rows from
-- before this column existed keep NULL (judged from the table's first row, as before).

ALTER TABLE stream_watermarks ADD COLUMN first_event_time timestamptz;

-- How far each windowed check has judged each source's clock, and when it last did. A source
-- whose watermark has not moved since is not judged again (the newest source always is).
CREATE TABLE quality_lanes (
    check_name   text        NOT NULL,
    lane         text        NOT NULL,
    judged_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (check_name, lane)
);
