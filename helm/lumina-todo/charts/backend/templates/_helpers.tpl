{{/*
Object name. Fixed to the chart name (not prefixed by the release) because
the other services reach this one by the stable DNS name
backend.<namespace>.svc.<cluster domain>.
*/}}
{{- define "backend.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{/*
Selector labels: only labels that never change for the life of a release, so
an upgrade never trips over the Deployment's immutable selector.
*/}}
{{- define "backend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "backend.labels" -}}
{{ include "backend.selectorLabels" . }}
app.kubernetes.io/component: api
app.kubernetes.io/part-of: lumina-todo
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "backend.image" -}}
{{- $repository := required "backend.image.repository is required (e.g. lumina/backend)" .Values.image.repository -}}
{{- $tag := required "backend.image.tag is required (the reconciler sets the content digest)" .Values.image.tag -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}

{{- define "backend.secretName" -}}
{{- required "backend.secrets.existingSecret must name the Secret holding JWT_SECRET_KEY" .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Pod-level half of the restricted Pod Security profile. */}}
{{- define "backend.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
# The fresh PVC is owned by root; fsGroup makes /data writable for UID 10001.
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level half of the restricted Pod Security profile. */}}
{{- define "backend.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
In-cluster URL of a Service: http://<name>.<namespace>.svc.<domain>:<port>.
Called with (list $ "backend" 8000).
*/}}
{{- define "backend.serviceUrl" -}}
{{- $root := index . 0 -}}
{{- printf "http://%s.%s.svc.%s:%v" (index . 1) $root.Release.Namespace (default "cluster.local" ($root.Values.global).clusterDomain) (index . 2) -}}
{{- end -}}
