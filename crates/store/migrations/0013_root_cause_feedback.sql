-- Operators' root-cause corrections, which AI Ops learns: the node they named (a lineage key),
-- the class it is learned under and the nodes of the incident's symptoms (what a later
-- incident is matched on).
ALTER TABLE aiops_feedback
    ADD COLUMN root_cause      text,
    ADD COLUMN root_cause_class text,
    ADD COLUMN symptom_nodes   text[];
