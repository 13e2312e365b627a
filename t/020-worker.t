#!/usr/bin/perl
# Worker API: /execute SSE events, validation that reports every error,
# /tokenize, /detokenize, /health, /ready, /metrics, correlation ids and
# the $starling_* variables in the access log.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2')->start;
    starling_model tiny path={{MODEL260K}};
    starling_model q8 path={{MODELQ8}};
    log_format st '$request_uri $status model=$starling_model '
                  'pt=$starling_prompt_tokens ct=$starling_completion_tokens '
                  'cached=$starling_cached_tokens ttft=$starling_ttft '
                  'queue=$starling_queue_time tpot=$starling_tpot '
                  'finish=$starling_finish_reason backend=$starling_backend '
                  'cid=$starling_correlation_id';
    access_log {{PREFIX}}/logs/starling.log st;
EOF2

# --- event order -------------------------------------------------------
my ($st, $h, $ev) = $t->stream('/execute',
    { job_id => 'job-1', prompt => 'Once upon a time', max_tokens => 10,
      temperature => 0.8, seed => 42 },
    'X-Correlation-ID' => 'corr-42');
is($st, 200, 'execute 200');
like($h->{'content-type'}, qr{^text/event-stream}, 'SSE');
is($h->{'x-correlation-id'}, 'corr-42', 'correlation id echoed');
my @names = map { $_->{event} } @$ev;
is($names[0], 'started', 'first event: started');
is($names[-1], 'end', 'last event: end');
is(scalar(grep { $_ eq 'end' || $_ eq 'error' } @names), 1, 'exactly one terminal event');
my @tok = grep { $_->{event} eq 'token' } @$ev;
is(scalar @tok, 10, '10 token events');
is_deeply([ map { $_->{json}{i} } @tok ], [ 0 .. 9 ], 'token indexes 0..9');
ok(!grep({ $_->{event} !~ /^(started|token|metrics|end)$/ } @$ev), 'only known events');
my $order = join ',', map { $_ eq 'token' ? 't' : $_ } @names;
like($order, qr/^started(,t)+,metrics,end$/, 'started -> token* -> metrics -> end');
is($ev->[0]{json}{job_id}, 'job-1', 'started.job_id');
is($ev->[0]{json}{model}, 'tiny', 'started.model');
ok($ev->[0]{json}{started_at} > 1e12, 'started_at in ms');
my $end = $ev->[-1]{json};
is($end->{tokens_out}, 10, 'end.tokens_out');
is($end->{stop_reason}, 'MAX_TOKENS', 'end.stop_reason');
ok(defined $end->{decode_time_ms}, 'end.decode_time_ms');
ok(exists $end->{stop_sequence_matched}, 'end.stop_sequence_matched');

# same seed, same text
my (undef, undef, $ev2) = $t->stream('/execute',
    { job_id => 'job-2', prompt => 'Once upon a time', max_tokens => 10,
      temperature => 0.8, seed => 42 });
is(join('', map { $_->{json}{t} } grep { $_->{event} eq 'token' } @$ev2),
   join('', map { $_->{json}{t} } @tok), 'same seed -> same output');

# stop string
(undef, undef, $ev) = $t->stream('/execute',
    { job_id => 'job-3', prompt => 'Once upon a time', max_tokens => 60,
      temperature => 0, stop => [ 'Lily' ] });
my $text = join '', map { $_->{json}{t} } grep { $_->{event} eq 'token' } @$ev;
unlike($text, qr/Lily/, 'stop string not in the output');
is($ev->[-1]{json}{stop_reason}, 'STOP_SEQUENCE', 'stop_reason STOP_SEQUENCE');
is($ev->[-1]{json}{stop_sequence_matched}, 'Lily', 'stop_sequence_matched');

# --- validation: every error at once -----------------------------------
my $r = $t->request('POST', '/execute',
    { job_id => '', prompt => 17, max_tokens => 0, temperature => 2.5,
      seed => -3, top_p => 'x' });
is($r->{status}, 400, 'invalid request: 400');
my %f = map { $_->{field} => $_ } @{$r->{json}{errors}};
ok($f{$_}, "error for $_") for qw(job_id prompt max_tokens temperature seed top_p);
for my $e (@{$r->{json}{errors}}) {
    ok(defined $e->{constraint} && defined $e->{message} && exists $e->{value},
       "error $e->{field} has field/constraint/message/value");
}
is($f{temperature}{value}, 2.5, 'value echoed for numbers');

my $secret = 'TOP-SECRET-PROMPT ' x 3000;
$r = $t->request('POST', '/execute', { job_id => 'x', prompt => $secret, max_tokens => 5000 });
is($r->{status}, 400, 'too long prompt + max_tokens: 400');
unlike($r->{body}, qr/TOP-SECRET/, 'prompt text never echoed');
is(scalar @{$r->{json}{errors}}, 2, 'both errors reported');

$r = $t->request('POST', '/execute', { prompt => 'x' });
is($r->{json}{errors}[0]{constraint}, 'required', 'missing job_id: required');
$r = $t->request('POST', '/execute', '{"job_id":"a","prompt":"x","temperature":NaN}');
is($r->{status}, 400, 'NaN: 400');
$r = $t->request('POST', '/execute', '{"job_id":"a","prompt":"x","temperature":-Infinity}');
is($r->{status}, 400, '-Infinity: 400');
$r = $t->request('POST', '/execute', "{\"job_id\":\"a\",\"prompt\":\"\xc3\x28\"}");
is($r->{status}, 400, 'invalid UTF-8 prompt: 400');
is($r->{json}{errors}[0]{constraint}, 'utf8', '... constraint utf8');
$r = $t->request('POST', '/execute', '{"job_id":"a","prompt":"x\u0000y"}');
is($r->{status}, 400, 'NUL in prompt: 400');
$r = $t->request('POST', '/execute', '{"job_id":"a","prompt":"x", "max_tokens": 1.5}');
is($r->{status}, 400, 'fractional max_tokens: 400');
$r = $t->request('POST', '/execute', '{"job_id":"s","prompt":"x","max_tokens":1,"seed":18446744073709551615}');
is($r->{status}, 200, 'seed = 2^64-1 accepted');
$r = $t->request('POST', '/execute', '{"job_id":"s","prompt":"x","max_tokens":1,"seed":18446744073709551616}');
is($r->{status}, 400, 'seed = 2^64 rejected');
$r = $t->request('POST', '/execute', '{"job_id":"a","prompt":"x",');
is($r->{status}, 400, 'truncated JSON: 400');
$r = $t->request('POST', '/execute', '["not an object"]');
is($r->{status}, 400, 'array body: 400');
$r = $t->request('POST', '/execute', { job_id => 'long', prompt => 'hello ' x 3000 });
is($r->{status}, 400, 'prompt over the context: 400');
like($r->{json}{errors}[0]{message}, qr/context/, '... mentions the context');

# --- tokenize / detokenize ------------------------------------------------
$r = $t->request('POST', '/tokenize', { content => 'Once upon a time', with_pieces => JSON::PP::true });
is($r->{status}, 200, 'tokenize 200');
is_deeply($r->{json}{tokens}, [ 1, 403, 407, 261, 378 ], 'llama.cpp ids for "Once upon a time"');
is(scalar @{$r->{json}{pieces}}, 5, 'pieces');
$r = $t->request('POST', '/tokenize', { content => 'Once upon a time', add_special => JSON::PP::false });
is_deeply($r->{json}{tokens}, [ 403, 407, 261, 378 ], 'add_special=false: no BOS');
$r = $t->request('POST', '/detokenize', { tokens => [ 403, 407, 261, 378 ] });
is($r->{json}{content}, ' Once upon a time', 'detokenize');
$r = $t->request('POST', '/detokenize', { tokens => [ 99999 ] });
is($r->{status}, 400, 'detokenize: id out of vocab 400');

# --- health / ready / metrics ------------------------------------------------
$r = $t->request('GET', '/health');
is($r->{status}, 200, 'health 200');
my $hj = $r->{json};
is($hj->{status}, 'ok', 'status ok');
ok($hj->{model_loaded}, 'model_loaded');
is($hj->{memory_type}, 'cpu', 'memory_type cpu');
is($hj->{vram_bytes}, 0, 'vram_bytes 0');
is($hj->{tokenizer_kind}, 'spm', 'tokenizer_kind');
is($hj->{vocab_size}, 512, 'vocab_size');
ok($hj->{context_length} > 0, 'context_length');
ok($hj->{quant_kind}, 'quant_kind');
is($hj->{kv_blocks_free}, $hj->{kv_blocks_total}, 'all KV blocks free when idle');
is($hj->{active_sequences}, 0, 'no active sequences');

$r = $t->request('GET', '/ready');
is($r->{status}, 200, 'ready 200');
ok($r->{json}{ready}, 'ready true');

$r = $t->request('GET', '/metrics');
is($r->{status}, 200, 'metrics 200');
like($r->{headers}{'content-type'}, qr{^text/plain}, 'Prometheus text');
like($r->{body}, qr/^starling_requests_total\{outcome="ok"\} [1-9]/m, 'ok requests counted');
like($r->{body}, qr/^starling_requests_total\{outcome="invalid"\} [1-9]/m, 'invalid requests counted');
like($r->{body}, qr/^starling_completion_tokens_total [1-9]/m, 'tokens counted');
like($r->{body}, qr/^starling_ttft_seconds_bucket\{le="\+Inf"\} [1-9]/m, 'ttft histogram');

{
    my (@bad, %family_done, $cur);
    for my $l (split /\n/, $r->{body}) {
        next if $l =~ /^# (HELP|TYPE) /;
        push @bad, $l unless $l =~ /^([a-z_]+?)(_bucket|_sum|_count)?(\{[^}]*\})? -?[0-9.e+]+$/;
        my $fam = $1 // '';
        $fam =~ s/_(bucket|sum|count)$//;
        if (!defined $cur || $fam ne $cur) {
            push @bad, "family $fam not grouped" if $family_done{$fam}++;
            $cur = $fam;
        }
    }
    ok(!@bad, 'metrics text is well-formed and grouped') or diag(join "\n", @bad);
}

$r = $t->request('POST', '/health', {});
is($r->{status}, 405, 'POST /health: 405');

# --- access log variables + correlation id in error log -----------------------
# a body over client_body_buffer_size is logged ([warn], buffered to a file)
$t->request('POST', '/execute', { job_id => 'z', prompt => 'y' x 20000, max_tokens => 1 },
            'X-Correlation-ID' => 'log-me-7');
$t->stop;

open my $fh, '<', "$t->{prefix}/logs/starling.log" or die;
my @log = <$fh>;
my ($line) = grep { /cid=corr-42/ } @log;
ok($line, 'access log line with the correlation id');
like($line // '', qr/model=tiny pt=5 ct=10 cached=0 ttft=\d+\.\d{3} queue=\d+\.\d{3} tpot=\d+\.\d+ finish=length backend=cpu/,
     'access log variables');
like($t->error_log, qr/correlation_id: "log-me-7"/, 'error.log lines carry the correlation id');
$t->check_error_log;

done_testing();
