{{/* Names, labels and shared pieces of the heal chart. */}}

{{- define "heal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "heal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every resource carries besides its selector labels ("heal.selector"). */}}
{{- define "heal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: heal
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector of one component: (dict "root" $ "component" "ingest"). */}}
{{- define "heal.selector" -}}
app.kubernetes.io/name: {{ include "heal.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "heal.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "heal.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "heal.image" -}}
{{- if eq (toString .Values.image.tag) "latest" -}}
{{- fail "image.tag: use a fixed version, not latest" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) -}}
{{- end -}}

{{/* Connection settings: bundled services or the external ones. */}}
{{- define "heal.databaseUrl" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "postgresql://%s-postgresql:5432/%s" (include "heal.fullname" .) .Values.postgresql.database -}}
{{- else -}}
{{- required "external.database.url is required when postgresql.enabled is false" .Values.external.database.url -}}
{{- end -}}
{{- end -}}

{{- define "heal.databaseUser" -}}
{{- if .Values.postgresql.enabled -}}
{{- .Values.postgresql.username -}}
{{- else -}}
{{- .Values.external.database.user -}}
{{- end -}}
{{- end -}}

{{- define "heal.kafkaBootstrapServers" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s-kafka:9092" (include "heal.fullname" .) -}}
{{- else -}}
{{- required "external.kafka.bootstrapServers is required when kafka.enabled is false" .Values.external.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{- define "heal.neo4jUri" -}}
{{- if .Values.neo4j.enabled -}}
{{- printf "bolt://%s-neo4j:7687" (include "heal.fullname" .) -}}
{{- else -}}
{{- .Values.external.neo4j.uri -}}
{{- end -}}
{{- end -}}

{{/* The secret password variable every heal container gets. */}}
{{- define "heal.databasePasswordEnv" -}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "heal.secretName" . }}
      key: database-password
{{- end -}}

{{/* Restarts pods when the configuration or the chart-made Secret changes. */}}
{{- define "heal.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/config.yaml") . | sha256sum }}
{{- end -}}
