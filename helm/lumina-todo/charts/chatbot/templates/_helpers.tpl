{{/*
Object name. Fixed to the chart name (not prefixed by the release) because
the other services reach this one by the stable DNS name
chatbot.<namespace>.svc.<cluster domain>.
*/}}
{{- define "chatbot.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{/*
Selector labels: only labels that never change for the life of a release, so
an upgrade never trips over the Deployment's immutable selector.
*/}}
{{- define "chatbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chatbot.labels" -}}
{{ include "chatbot.selectorLabels" . }}
app.kubernetes.io/component: chat
app.kubernetes.io/part-of: lumina-todo
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "chatbot.image" -}}
{{- $repository := required "chatbot.image.repository is required (e.g. lumina/chatbot)" .Values.image.repository -}}
{{- $tag := required "chatbot.image.tag is required (the reconciler sets the content digest)" .Values.image.tag -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}

{{- define "chatbot.secretName" -}}
{{- required "chatbot.secrets.existingSecret must name the Secret holding JWT_SECRET_KEY" .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Pod-level half of the restricted Pod Security profile. */}}
{{- define "chatbot.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level half of the restricted Pod Security profile. */}}
{{- define "chatbot.containerSecurityContext" -}}
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
In-cluster URL of a sibling Service: http://<name>.<namespace>.svc.<domain>:<port>.
Called with (list $ "backend" 8000).
*/}}
{{- define "chatbot.serviceUrl" -}}
{{- $root := index . 0 -}}
{{- printf "http://%s.%s.svc.%s:%v" (index . 1) $root.Release.Namespace (default "cluster.local" ($root.Values.global).clusterDomain) (index . 2) -}}
{{- end -}}
