{{/* Chart name. */}}
{{- define "millis-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the prefix of every object of the release. */}}
{{- define "millis-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "millis-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "millis-operator.labels" -}}
helm.sh/chart: {{ include "millis-operator.chart" . }}
{{ include "millis-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the manager pods. */}}
{{- define "millis-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "millis-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{- define "millis-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "millis-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The manager's RBAC rules, read from files/role.yaml: a copy of the
controller-gen output config/rbac/role.yaml kept in sync by `make chart-sync`
(test/install fails when the copy drifts).
*/}}
{{- define "millis-operator.managerRules" -}}
{{- $role := .Files.Get "files/role.yaml" | fromYaml }}
{{- if not $role.rules }}
{{- fail "files/role.yaml has no rules: run make chart-sync" }}
{{- end }}
{{- toYaml $role.rules }}
{{- end }}

{{/* Checks of value combinations that would deploy something unsafe. */}}
{{- define "millis-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 requires leaderElection.enabled: replicas that all reconcile could dial a call twice" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.enabled requires ingress.host (the public host Millis calls)" }}
{{- end }}
{{- range .Values.watchNamespaces }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) }}
{{- fail (printf "watchNamespaces: %q is not a namespace name" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A value as a flag argument. Helm reads numbers from values files as floats,
which print as 1.048576e+06; whole numbers are printed as integers.
*/}}
{{- define "millis-operator.flagValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}
{{- printf "%d" (int64 .) }}
{{- else if kindIs "slice" . }}
{{- join "," . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}
