// Action group and alert rules. The connector writes one structured log line per event
// (connector/functions/telemetry.py; docs/deploy.md, "Alerts"): with Azure Monitor OpenTelemetry on,
// the trace's customDimensions carry "connector.event" = <event>; through the host's own
// log pipe the message reads "connector <event> key=value ...". The rules match either.

@description('Prefix for alert and action group names.')
param namePrefix string

@description('Tags applied to every alert resource.')
param tags object

@description('Address that receives alert e-mails.')
param alertEmail string

@description('Region of the log search alert rules (the Application Insights region).')
param location string

@description('Resource id of the Application Insights component the log alerts query.')
param appInsightsId string

@description('Resource id of the Event Grid system topic (dead-letter metric alert).')
param systemTopicId string

@description('Blob endpoint of the drop storage account (https://<account>.blob.core.windows.net/): the alerts link to run reports under it.')
param blobEndpoint string

// A run's report is the blob <source>/<run id>/report.html in the container 'reports'
// (connector/state/blob.py BlobStateStore, connector/sync/run_store.py). The alerts carry
// its full https URL, built in the query from the event line's source and run id. The
// container stays private: the link opens for someone signed in with Entra ID who may read
// it (docs/deploy.md, Alerts); an alert never carries a SAS. uri() keeps the endpoint's host
// whether or not it ends in '/'. Source names and run ids are [A-Za-z0-9-] (the sources
// schema and connector/sync/journal.py), so they need no escaping in a URL path.
var reportsUrl = uri(blobEndpoint, 'reports/')
var reportLinkKql = 'strcat("${reportsUrl}", tostring(customDimensions["connector.source"]), "/", tostring(customDimensions["connector.run_id"]), "/report.html")'

@description('How often the log alert rules run.')
param evaluationFrequency string = 'PT15M'

@description('Look-back window of the log alert rules; longer than the frequency so late-ingested lines (5-10 min) are still seen.')
param windowSize string = 'PT30M'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-owners'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'hrconnector'
    enabled: true
    emailReceivers: [
      {
        name: 'connector-owner'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Records Entra rejected or that failed to provision in a run.
resource recordsFailedAlert 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: '${namePrefix}-records-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HR connector: records failed to provision'
    description: 'A run reported failed records (event records_failed). The alert\'s dimensions carry the source, the run id, the failed count and the report link (${reportsUrl}<source>/<run id>/report.html; it opens for someone signed in with Entra ID who may read the reports container). See docs/deploy.md, Alerts.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    criteria: {
      allOf: [
        {
          query: 'traces | where tostring(customDimensions["connector.event"]) == "records_failed" or message startswith "connector records_failed " | project timestamp, source = tostring(customDimensions["connector.source"]), run_id = tostring(customDimensions["connector.run_id"]), failed = tostring(customDimensions["connector.count"]), report = ${reportLinkKql}'
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'run_id'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'failed'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'report'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT1H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Runs the mass-change guard held for approval.
resource runsHeldAlert 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: '${namePrefix}-runs-held'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HR connector: run held for approval'
    description: 'A run exceeded the mass-change threshold and is waiting for approval (event run_held). The alert\'s dimensions carry the source, the run id and the report link (${reportsUrl}<source>/<run id>/report.html: counts and who would be disabled; opened with an Entra ID sign-in, docs/deploy.md, Alerts). Approve or discard: docs/deploy.md, Approvals.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    criteria: {
      allOf: [
        {
          query: 'traces | where tostring(customDimensions["connector.event"]) == "run_held" or message startswith "connector run_held " | project timestamp, source = tostring(customDimensions["connector.source"]), run_id = tostring(customDimensions["connector.run_id"]), report = ${reportLinkKql}'
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'run_id'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'report'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT1H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// The Entra provisioning job went into quarantine: nothing provisions until it is fixed.
resource jobQuarantinedAlert 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: '${namePrefix}-job-quarantined'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HR connector: provisioning job in quarantine'
    description: 'The API-driven provisioning job reports quarantine (event job_quarantined). The alert\'s dimensions carry the source and the reason code; runs of that source wait (see /api/health). See docs/deploy.md, Troubleshooting.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    criteria: {
      allOf: [
        {
          query: 'traces | where tostring(customDimensions["connector.event"]) == "job_quarantined" or message startswith "connector job_quarantined " | project timestamp, source = tostring(customDimensions["connector.source"]), reason = tostring(customDimensions["connector.reason"])'
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'reason'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT1H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// A sql/rest source could not be pulled: nothing from it is applied until a pull succeeds.
resource pullFailedAlert 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: '${namePrefix}-pull-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HR connector: a source could not be pulled'
    description: 'A sql or rest source could not be pulled (event pull_failed); it is retried every timer pass. The alert\'s dimensions carry the source and the reason code. See docs/sources.md, How pulls run.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    criteria: {
      allOf: [
        {
          query: 'traces | where tostring(customDimensions["connector.event"]) == "pull_failed" or message startswith "connector pull_failed " | project timestamp, source = tostring(customDimensions["connector.source"]), reason = tostring(customDimensions["connector.reason"])'
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'reason'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT1H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// A source declared expect_every and no new file (or pulled run) arrived in time: the most
// common silent failure of a nightly export. Logged once per timer pass while it lasts.
resource sourceStaleAlert 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: '${namePrefix}-source-stale'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HR connector: no new HR file arrived in time'
    description: 'A source got no new file within its expect_every (event source_stale); /api/health is degraded naming it. The alert\'s dimensions carry the source, the hours since the last file, the expected interval, the last run id and its report link (${reportsUrl}<source>/<run id>/report.html, or none; opened with an Entra ID sign-in, docs/deploy.md, Alerts). Check the HR export. See docs/sources.md, expect_every.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    criteria: {
      allOf: [
        {
          query: 'traces | where tostring(customDimensions["connector.event"]) == "source_stale" or message startswith "connector source_stale " | project timestamp, source = tostring(customDimensions["connector.source"]), run_id = tostring(customDimensions["connector.run_id"]), hours = tostring(customDimensions["connector.hours"]), expected_hours = tostring(customDimensions["connector.expected_hours"]), report = iff(isempty(tostring(customDimensions["connector.run_id"])), "none", ${reportLinkKql})'
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'hours'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'expected_hours'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'run_id'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'report'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT12H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Any failed function invocation (ingest_extract, reconcile, health).
resource functionFailuresAlert 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: '${namePrefix}-function-failures'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HR connector: function invocation failed'
    description: 'A function invocation ended in failure (requests with success == false).'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    criteria: {
      allOf: [
        {
          query: 'requests | where success == false | project timestamp, operation_Name, resultCode'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT1H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Event Grid gave up delivering a BlobCreated event (the dropped file was not processed).
resource deadLetteredAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-events-deadlettered'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid dead-lettered a BlobCreated event; the file in incoming/ was not processed. See the dead-letter container.'
    severity: 1
    enabled: true
    scopes: [
      systemTopicId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

output actionGroupId string = actionGroup.id
