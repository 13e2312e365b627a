#!/usr/bin/perl
# The documented JSON access_log format (README "Logs"): escape=json with
# every $starling_* variable; each line parses as JSON and carries the
# request's figures. Also conf/starling-production.conf's format.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();

# the format is the one conf/starling-production.conf documents
open my $pc, '<', StarlingTest::root() . '/conf/starling-production.conf'
    or die "production conf: $!";
my ($format) = do { local $/; <$pc> } =~ /^(\s*log_format starling_json .*?';)$/ms;
close $pc;
ok($format, 'conf/starling-production.conf has the starling_json format')
    or BAIL_OUT('no format');
$format .= "\n    access_log {{PREFIX}}/logs/json.log starling_json;\n";

my $t = StarlingTest->new(http => <<"EOF2")->start;
    starling_model tiny path={{MODEL260K}};
$format
EOF2

my $r = $t->request('POST', '/v1/completions',
                    { prompt => "Once upon a time", max_tokens => 6,
                      temperature => 0 },
                    'X-Correlation-ID' => 'corr\\back');
is($r->{status}, 200, 'completion');
my $usage = $r->{json}{usage};

$r = $t->request('POST', '/v1/completions', { prompt => 'x', temperature => 9 });
is($r->{status}, 400, 'invalid request');
$r = $t->request('GET', '/health');

$t->stop;

open my $fh, '<', "$t->{prefix}/logs/json.log" or die "json.log: $!";
# the harness polls /ready while nginx starts
my @lines = grep { !m{"GET /ready } } <$fh>;
close $fh;
is(scalar(@lines), 3, 'three log lines');

my @rec = map { StarlingTest::json_decode($_) } @lines;
ok(!grep({ !defined } @rec), 'every line parses as JSON')
    or diag(@lines);

my $c = $rec[0];
is($c->{status}, 200, 'status');
is($c->{model}, 'tiny', 'model');
is($c->{backend}, 'cpu', 'backend');
is($c->{correlation_id}, 'corr\\back', 'a backslash survives escape=json');
is($c->{prompt_tokens}, $usage->{prompt_tokens}, 'prompt tokens = usage');
is($c->{completion_tokens}, $usage->{completion_tokens},
   'completion tokens = usage');
is($c->{finish_reason}, 'length', 'finish reason');
for my $k (qw(queue_time prefill_time ttft tpot decode_time)) {
    like($c->{$k}, qr/^\d+\.\d{3,4}$/, "$k is seconds");
}
cmp_ok($c->{prefill_time}, '<=', $c->{ttft} + 0.0005,
       'prefill time is part of the ttft');

is($rec[1]{status}, 400, 'invalid request logged');
is($rec[1]{completion_tokens}, '', 'no figures for a request that never ran');
is($rec[2]{model}, 'tiny', '/health has the model');
is($rec[2]{ttft}, '', 'and no figures');

$t->check_error_log;
done_testing();
