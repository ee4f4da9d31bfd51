-- The juryflow store schema as Store's create_all made it before migrations existed (commit 1595160),
-- compiled for postgresql. tests/labeling/test_migrations.py builds a database from it and upgrades it.

CREATE TABLE ai_labels (
	sample_id VARCHAR NOT NULL, 
	labeler_version VARCHAR NOT NULL, 
	labeler_name VARCHAR NOT NULL, 
	p_a FLOAT NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (sample_id, labeler_version)
);

CREATE TABLE final_labels (
	sample_id VARCHAR NOT NULL, 
	preferred VARCHAR NOT NULL, 
	source VARCHAR NOT NULL, 
	labeler_version VARCHAR, 
	judge_version VARCHAR, 
	confidence FLOAT, 
	n_annotators INTEGER NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (sample_id)
);

CREATE TABLE human_labels (
	annotation_id VARCHAR NOT NULL, 
	sample_id VARCHAR NOT NULL, 
	annotator VARCHAR NOT NULL, 
	choice VARCHAR NOT NULL, 
	reason TEXT, 
	cancelled BOOLEAN NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (annotation_id)
);

CREATE INDEX ix_human_labels_sample_id ON human_labels (sample_id);

CREATE TABLE human_tasks (
	sample_id VARCHAR NOT NULL, 
	project_id BIGINT NOT NULL, 
	task_id BIGINT NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (sample_id)
);

CREATE TABLE judge_verdicts (
	sample_id VARCHAR NOT NULL, 
	version VARCHAR NOT NULL, 
	model VARCHAR NOT NULL, 
	p_a_original FLOAT, 
	p_a_swapped FLOAT, 
	principles JSONB NOT NULL, 
	critique TEXT, 
	parse_error TEXT, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (sample_id, version)
);

CREATE TABLE quarantine (
	record_id VARCHAR NOT NULL, 
	sample_id VARCHAR NOT NULL, 
	source VARCHAR NOT NULL, 
	row INTEGER, 
	field VARCHAR NOT NULL, 
	reason TEXT NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (record_id)
);

CREATE TABLE records (
	kind VARCHAR NOT NULL, 
	key VARCHAR NOT NULL, 
	payload JSONB NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (kind, key)
);

CREATE TABLE routes (
	sample_id VARCHAR NOT NULL, 
	stage VARCHAR NOT NULL, 
	to_judge BOOLEAN NOT NULL, 
	to_human BOOLEAN NOT NULL, 
	accept_judge BOOLEAN NOT NULL, 
	reasons JSONB NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (sample_id, stage)
);

CREATE TABLE samples (
	sample_id VARCHAR NOT NULL, 
	source VARCHAR NOT NULL, 
	state VARCHAR NOT NULL, 
	fingerprint VARCHAR NOT NULL, 
	prompt JSONB NOT NULL, 
	response_a TEXT NOT NULL, 
	response_b TEXT NOT NULL, 
	reference_label VARCHAR, 
	meta JSONB NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (sample_id)
);

CREATE INDEX ix_samples_state ON samples (state);

CREATE TABLE snapshots (
	snapshot_id VARCHAR NOT NULL, 
	n_rows INTEGER NOT NULL, 
	counts JSONB NOT NULL, 
	path TEXT NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (snapshot_id)
);

CREATE INDEX ix_snapshots_created_at ON snapshots (created_at);

CREATE TABLE watermarks (
	name VARCHAR NOT NULL, 
	value TEXT NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (name)
);
