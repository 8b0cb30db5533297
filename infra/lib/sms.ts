// The account's SMS settings, applied by the stack (issue 16.9): transactional type, the monthly
// spend limit the spend alarm is based on, and the sender ID. SNS keeps these per account and
// region and CloudFormation has no resource for them, so a custom resource calls
// SNS SetSMSAttributes on every create and update.
//
// - A limit above the account's SMS quota is refused by SNS, and the deployment fails naming
//   it: raise the quota first (docs/DEPLOY.md) or deploy a lower `smsMonthlySpendLimitUsd`.
//   Failing is deliberate: a limit the account does not have would leave the spend alarm
//   watching the wrong figure while SMS silently stops at the real one.
// - Deleting the stack leaves the settings as they are: lowering or clearing the limit could
//   stop other SMS of the account, and nothing of Vigil's depends on them after it is gone.
// - Two stages in one account share these settings: let one own them (`manageSmsSettings`
//   true) and the others only print the command (false), or the last deployment wins.

import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';

export interface SmsSettingsProps {
  readonly stage: string;
  readonly monthlySpendLimitUsd: number;
  readonly senderId?: string;
  /** Waives checkov and cfn-lint findings on a construct, with the reason (see vigil-stack.ts). */
  readonly waive: (c: Construct, checkov: { id: string; why: string }[], cfnLint?: { id: string; why: string }[]) => void;
}

/** The SMS attributes, as SNS SetSMSAttributes takes them. */
export function smsAttributes(limitUsd: number, senderId?: string): Record<string, string> {
  return {
    DefaultSMSType: 'Transactional',
    MonthlySpendLimit: String(limitUsd),
    ...(senderId ? { DefaultSenderID: senderId } : {}),
  };
}

export class SmsSettings extends Construct {
  readonly resource: cr.AwsCustomResource;

  constructor(scope: Construct, id: string, props: SmsSettingsProps) {
    super(scope, id);
    const apply: cr.AwsSdkCall = {
      service: 'SNS',
      action: 'SetSMSAttributes',
      parameters: { attributes: smsAttributes(props.monthlySpendLimitUsd, props.senderId) },
      // One physical resource per stage: a changed limit is an update, not a replacement.
      physicalResourceId: cr.PhysicalResourceId.of(`vigil-${props.stage}-sms-settings`),
    };
    this.resource = new cr.AwsCustomResource(this, 'Apply', {
      resourceType: 'Custom::VigilSmsSettings',
      onCreate: apply,
      onUpdate: apply,
      // SetSMSAttributes has no resource ARN (account-wide settings): the only action allowed.
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['sns:SetSMSAttributes'], resources: ['*'] }),
      ]),
      // The SDK bundled with the handler: the deployment neither downloads nor changes it.
      installLatestAwsSdk: false,
      timeout: Duration.minutes(2),
    });

    // The handler is CDK's singleton function for AwsCustomResource, one per stack.
    const handler = Stack.of(this).node.tryFindChild('AWS679f53fac002430cb0da5b7982bd2287');
    const why = 'CDK\'s AwsCustomResource handler: runs only during deployments to call SNS SetSMSAttributes once.';
    Validations.of(this.resource).acknowledge({
      id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      reason: 'sns:SetSMSAttributes sets account-wide settings and has no resource ARN; the policy allows that action only.',
    });
    if (handler) {
      Validations.of(handler).acknowledge(
        { id: 'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]', reason: `${why} The managed policy only lets it write its own logs.` },
        { id: 'Serverless::Serverless-LambdaDLQ', reason: `${why} CloudFormation invokes it and sees every failure.` },
        { id: 'Serverless::Serverless-LambdaTracing', reason: why },
        { id: 'Serverless::Serverless-LambdaDefaultMemorySize', reason: why },
      );
      props.waive(handler, [
        { id: 'CKV_AWS_116', why: `${why} CloudFormation invokes it synchronously and sees every failure.` },
        { id: 'CKV_AWS_117', why: `${why} It calls one AWS API; no VPC.` },
        { id: 'CKV_AWS_115', why: `${why} Runs only during deployments; no concurrency to reserve.` },
        { id: 'CKV_AWS_173', why: `${why} No environment variables with secrets.` },
      ], [{ id: 'W3005', why: 'CDK adds DependsOn on the role it also references with GetAtt; redundant, harmless.' }]);
    }
  }
}
