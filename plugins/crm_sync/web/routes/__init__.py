"""One router per resource, each declaring its own access dependency (see ..security): the console's
profiles, runs and review queue behind the Airflow login, and the GHL webhook receiver (`receiver`),
open by design and verified by signature."""
