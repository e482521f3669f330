#!/bin/sh
# Submit sh010 to Deadline: the analysis job, then the render job depending on it.
# DEADLINE_COMMAND names deadlinecommand when it is not on PATH.
set -eu
cd "$(dirname "$0")"
deadline="${DEADLINE_COMMAND:-deadlinecommand}"
analysis=$("$deadline" analyze.job_info.txt analyze.plugin_info.txt)
printf '%s\n' "$analysis"
id=$(printf '%s\n' "$analysis" | sed -n 's/^JobID=//p' | tr -d '\r')
[ -n "$id" ] || { echo "submit.sh: no JobID from the analysis job's submission" >&2; exit 1; }
sed "s/^JobDependencies=.*/JobDependencies=$id/" render.job_info.txt > render.job_info.submitted.txt
"$deadline" render.job_info.submitted.txt render.plugin_info.txt
