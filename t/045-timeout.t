#!/usr/bin/perl
# starling_request_timeout: a wall-clock limit per request. The sequence
# is cancelled at the next step boundary and the response ends normally:
# worker API stop_reason TIMEOUT, OpenAI finish_reason "length", the
# access log's $starling_finish_reason "timeout"; the KV memory is freed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}} threads=1 ctx=8192;
    starling_max_tokens 8000;
    log_format fin '$request_uri $starling_finish_reason';
EOF2
        location /short/ { starling worker; starling_request_timeout 60ms;
                           access_log {{PREFIX}}/logs/fin.log fin; }
        location /v1/ { starling openai; starling_request_timeout 60ms; }
        location / { starling worker; }
EOF3

my $t0 = time;
my ($status, undef, $ev) = $t->stream('/short/execute',
    { job_id => 'slow', prompt => 'Once upon a time', max_tokens => 8000,
      temperature => 0, ignore_eos => JSON::PP::true });
my $elapsed = time - $t0;
is($status, 200, 'stream started');
my ($end) = grep { ($_->{event} // '') eq 'end' } @$ev;
ok($end, 'one end event');
is($end->{json}{stop_reason}, 'TIMEOUT', 'stop_reason TIMEOUT');
cmp_ok($end->{json}{tokens_out}, '<', 8000, "cut short ($end->{json}{tokens_out} tokens)");
# no wall-clock assertion: TIMEOUT and the short count show the limit cut
# the request (8000 tokens take far longer than 60 ms, even on a fast machine); the time is a figure
diag(sprintf('ended %.3f s after the request (limit 60 ms)', $elapsed));

my $r = $t->request('POST', '/v1/completions',
    { prompt => 'Once upon a time', max_tokens => 8000, temperature => 0,
      ignore_eos => JSON::PP::true });
is($r->{status}, 200, 'non-streaming completion: 200');
is($r->{json}{choices}[0]{finish_reason}, 'length', 'finish_reason length');
cmp_ok($r->{json}{usage}{completion_tokens}, '<', 8000, 'fewer tokens than asked');

my $deadline = time + 5;
my $h;
do {
    $h = $t->request('GET', '/health')->{json};
    sleep 0.05;
} while (time < $deadline && $h->{active_sequences});
is($h->{active_sequences}, 0, 'sequences freed');
is($h->{kv_blocks_free}, $h->{kv_blocks_total}, 'KV blocks free');

my $fast = $t->request('POST', '/short/tokenize', { content => 'hi' });
is($fast->{status}, 200, 'short requests are unaffected');

$t->stop;
open my $fh, '<', "$t->{prefix}/logs/fin.log" or die $!;
my $log = do { local $/; <$fh> };
like($log, qr{/short/execute timeout}, '$starling_finish_reason is "timeout"');
$t->check_error_log;
done_testing();
