#!/usr/bin/env node
// A team's own CDK app in TypeScript that adds storecrypt to a stack it already has. The
// construct is Go, which jsii does not make consumable from other languages, so the app
// deploys the template the organization published and staged (make publish, storecrypt
// stage) as a nested stack: storecrypt's logical IDs live in the child stack and cannot
// collide with the team's (docs/cdk-languages.md says why not CfnInclude).
import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

// Where the organization staged storecrypt: the code bucket of each region is
// <codeBucketPrefix>-<region>, the template is under codePrefix.
const codeBucketPrefix = 'acme-storecrypt';
const codePrefix = 'storecrypt/';
// The path the organization reserved (by SCP) for the roles of instances storecrypt encrypts.
const instanceRolePath = '/storecrypt/instances/';
const optInTag = 'storecrypt:encrypt=true';

class Platform extends cdk.Stack {
  constructor(scope: Construct, id: string, props?: cdk.StackProps) {
    super(scope, id, props);

    // What the team had before storecrypt. Its on-call topic is named "Alarms", as
    // storecrypt's alarms construct is: the same logical ID (Alarms04B5A0BF) in one
    // template, which is what CfnInclude of the published template would make.
    const alarms = new sns.Topic(this, 'Alarms', { enforceSSL: true });
    // The workers' role, created under the instance role path: the key policy of the
    // nested stack makes every role under it a key user for its own instance's volumes.
    const workers = new iam.Role(this, 'Workers', {
      path: instanceRolePath,
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    new iam.InstanceProfile(this, 'WorkersProfile', { role: workers });

    const storecrypt = new cdk.CfnStack(this, 'StoreCrypt', {
      templateUrl: cdk.Fn.sub(`https://${codeBucketPrefix}-\${AWS::Region}.s3.\${AWS::Region}.\${AWS::URLSuffix}/${codePrefix}storecrypt.template.json`),
      parameters: {
        CodeBucketPrefix: codeBucketPrefix,
        CodePrefix: codePrefix,
        InstanceRolePath: instanceRolePath,
        OptInTag: optInTag,
        AlarmTopicArn: alarms.topicArn,
      },
    });

    const output = (name: string) => cdk.Token.asString(storecrypt.getAtt(`Outputs.${name}`));
    new cdk.CfnOutput(this, 'StoreCryptKeyArn', { value: output('KeyArn'), description: 'storecrypt key that wraps the workers\' volume keys' });
    new cdk.CfnOutput(this, 'StoreCryptDocumentName', { value: output('DocumentName'), description: 'storecrypt SSM document, to rerun from the console' });
    new cdk.CfnOutput(this, 'StoreCryptStackId', { value: storecrypt.ref, description: 'the nested stack: storecrypt --stack takes its name' });
  }
}

const app = new cdk.App();
new Platform(app, 'Platform');
app.synth();
