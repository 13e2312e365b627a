#!/usr/bin/perl
# OpenAI-compatible surface: /v1/completions, /v1/chat/completions and
# /v1/models, streaming and not, usage, logprobs, errors; greedy output
# equal to the engine CLI's on both test models.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new->start;
my $root = StarlingTest::root();

# --- non-streaming completion ------------------------------------------
my $r = $t->request('POST', '/v1/completions',
    { model => 'tiny', prompt => 'Once upon a time', max_tokens => 12,
      temperature => 0 });
is($r->{status}, 200, 'completion 200');
like($r->{headers}{'content-type'}, qr{application/json}, 'json reply');
my $j = $r->{json};
is($j->{object}, 'text_completion', 'object');
like($j->{id}, qr/^cmpl-/, 'id');
is($j->{model}, 'tiny', 'model');
is(scalar @{$j->{choices}}, 1, 'one choice');
ok(length $j->{choices}[0]{text}, 'text generated');
is($j->{choices}[0]{finish_reason}, 'length', 'finish_reason length');
is($j->{usage}{completion_tokens}, 12, 'usage completion_tokens');
is($j->{usage}{prompt_tokens}, 5, 'usage prompt_tokens (BOS + 4)');
is($j->{usage}{total_tokens}, 17, 'usage total');
ok(exists $j->{usage}{prompt_tokens_details}{cached_tokens}, 'cached_tokens');
ok($r->{headers}{'x-correlation-id'}, 'correlation id generated');

# --- streaming completion ----------------------------------------------
my ($st, $h, $ev) = $t->stream('/v1/completions',
    { model => 'tiny', prompt => 'Once upon a time', max_tokens => 12,
      temperature => 0, stream => JSON::PP::true,
      stream_options => { include_usage => JSON::PP::true } });
is($st, 200, 'stream 200');
like($h->{'content-type'}, qr{^text/event-stream}, 'text/event-stream');
is($h->{'cache-control'}, 'no-cache', 'Cache-Control: no-cache');
is($h->{'x-accel-buffering'}, 'no', 'X-Accel-Buffering: no');
is($ev->[-1]{data}, '[DONE]', 'ends with [DONE]');
my @chunks = map { $_->{json} } @$ev[0 .. $#$ev - 1];
ok(!grep({ !defined $_ } @chunks), 'every chunk is JSON');
my $usage = $chunks[-1];
is_deeply($usage->{choices}, [], 'usage chunk has no choices');
is($usage->{usage}{completion_tokens}, 12, 'usage chunk counts');
my $fin = $chunks[-2];
is($fin->{choices}[0]{finish_reason}, 'length', 'final chunk finish_reason');
my $text = join '', map { $_->{choices}[0]{text} } @chunks[0 .. $#chunks - 1];
is($text, $j->{choices}[0]{text}, 'streamed text == non-streamed text');
ok(!grep({ defined $_->{event} } @$ev), 'no event: lines on the OpenAI surface');

# --- chat ------------------------------------------------------------------
$r = $t->request('POST', '/v1/chat/completions',
    { model => 'q8', messages => [ { role => 'system', content => 'Be brief.' },
                                   { role => 'user', content => [ { type => 'text', text => 'Hi' } ] } ],
      max_tokens => 8, temperature => 0 });
is($r->{status}, 200, 'chat 200');
is($r->{json}{object}, 'chat.completion', 'chat object');
like($r->{json}{id}, qr/^chatcmpl-/, 'chat id');
is($r->{json}{choices}[0]{message}{role}, 'assistant', 'assistant message');
ok(defined $r->{json}{choices}[0]{message}{content}, 'content');

($st, $h, $ev) = $t->stream('/v1/chat/completions',
    { model => 'q8', messages => [ { role => 'user', content => 'Hi' } ],
      max_tokens => 4, stream => JSON::PP::true, logprobs => JSON::PP::true,
      top_logprobs => 2 });
is($st, 200, 'chat stream 200');
is($ev->[0]{json}{choices}[0]{delta}{role}, 'assistant', 'first chunk carries the role');
is($ev->[0]{json}{object}, 'chat.completion.chunk', 'chunk object');
my ($lp) = grep { $_->{json} && $_->{json}{choices}[0] && $_->{json}{choices}[0]{logprobs} } @$ev;
ok($lp, 'a chunk with logprobs');
if ($lp) {
    my $c = $lp->{json}{choices}[0]{logprobs}{content}[0];
    ok(defined $c->{logprob} && $c->{logprob} <= 0, 'logprob <= 0');
    is(scalar @{$c->{top_logprobs}}, 2, 'two top_logprobs');
    ok(ref $c->{bytes} eq 'ARRAY', 'bytes');
}
is($ev->[-1]{data}, '[DONE]', 'chat stream ends with [DONE]');

# --- logprobs (completions) ------------------------------------------------
$r = $t->request('POST', '/v1/completions',
    { prompt => 'Once', max_tokens => 3, temperature => 0, logprobs => 3 });
my $l = $r->{json}{choices}[0]{logprobs};
is(scalar @{$l->{tokens}}, 3, 'logprobs.tokens');
is(scalar @{$l->{token_logprobs}}, 3, 'logprobs.token_logprobs');
is(scalar keys %{$l->{top_logprobs}[0]}, 3, 'top_logprobs has 3 entries') or diag explain $l;
is($l->{text_offset}[0], 0, 'text_offset starts at 0');

# --- models --------------------------------------------------------------
$r = $t->request('GET', '/v1/models');
is($r->{status}, 200, 'models 200');
is_deeply([ map { $_->{id} } @{$r->{json}{data}} ], [ 'tiny', 'q8' ], 'model list');

# --- errors ----------------------------------------------------------------
$r = $t->request('POST', '/v1/completions', { prompt => 'x', temperature => 5 });
is($r->{status}, 400, 'temperature out of range: 400');
is($r->{json}{error}{type}, 'invalid_request_error', 'OpenAI error type');
is($r->{json}{error}{param}, 'temperature', 'error param');
ok($r->{json}{error}{message}, 'error message');
ok(exists $r->{json}{error}{code}, 'error code');

$r = $t->request('POST', '/v1/completions', { prompt => 'x', model => 'gpt-9' });
is($r->{status}, 404, 'unknown model: 404');
is($r->{json}{error}{code}, 'model_not_found', 'model_not_found');

$r = $t->request('POST', '/v1/completions', '{"prompt": "x", "temperature": NaN}');
is($r->{status}, 400, 'NaN rejected');
$r = $t->request('POST', '/v1/completions', '{"prompt": "x", "temperature": Infinity}');
is($r->{status}, 400, 'Infinity rejected');
$r = $t->request('POST', '/v1/completions', '{"prompt": "x", "temperature": 1e999}');
is($r->{status}, 400, 'overflowing number rejected');
$r = $t->request('POST', '/v1/completions', "{\"prompt\": \"\xff\xfe\"}");
is($r->{status}, 400, 'invalid UTF-8 rejected');
like($r->{json}{error}{message}, qr/UTF-8/, '... saying UTF-8');
$r = $t->request('POST', '/v1/completions', '[' x 100000);
is($r->{status}, 400, 'deep nesting rejected');
$r = $t->request('POST', '/v1/completions', { prompt => 'x', n => 65 });
is($r->{status}, 400, 'n=65 rejected (n > 1: t/015-choices.t)');
$r = $t->request('POST', '/v1/completions', { prompt => 'x', unknown_field => [1, 2] , max_tokens => 1});
is($r->{status}, 200, 'unknown fields ignored');
$r = $t->request('POST', '/v1/completions', { prompt => 'hello ' x 2000 });
is($r->{status}, 400, 'prompt longer than the context: 400');
is($r->{json}{error}{code}, 'context_length_exceeded', '... context_length_exceeded');
like($r->{json}{error}{message}, qr/context/, '... clear message');
$r = $t->request('GET', '/v1/completions');
is($r->{status}, 405, 'GET /v1/completions: 405');
is($r->{headers}{allow}, 'POST', '... Allow: POST');
is($r->{json}{error}{code}, 'method_not_allowed', '... OpenAI error object');
$r = $t->request('POST', '/v1/nothing', { });
is($r->{status}, 404, 'unknown endpoint: 404');
$r = $t->request('POST', '/v1/completions', { prompt => 'x' x (2 * 1024 * 1024) });
is($r->{status}, 413, 'body over client_max_body_size: 413');

# --- greedy output equals the engine CLI's ---------------------------------
my $cli = "$root/build/starling-generate";
SKIP: {
    skip 'build/starling-generate not built', 8 unless -x $cli;

    for my $m ([ 'tiny', 'stories260K.gguf' ], [ 'q8', 'TinyStories-656K-Q8_0.gguf' ]) {
        my ($name, $file) = @$m;
        my $prompt = 'Once upon a time, there was a';
        my $out = `timeout 60 $cli -m $root/models/$file -p '$prompt' -n 24 --temp 0 --json </dev/null 2>/dev/null`;
        my $cj = json_decode($out);
        ok($cj && $cj->{generated_ids}, "$name: CLI ids") or next;

        # token ids from the worker API
        my (undef, undef, $wev) = $t->stream('/execute',
            { job_id => "greedy-$name", model => $name, prompt => $prompt,
              max_tokens => 24, temperature => 0 });
        my @ids = map { $_->{json}{id} } grep { ($_->{event} // '') eq 'token' } @$wev;
        is_deeply(\@ids, $cj->{generated_ids}, "$name: /execute ids == CLI ids");

        # text from the OpenAI surface == the CLI ids detokenized
        my $d = $t->request('POST', '/detokenize',
                            { model => $name, tokens => $cj->{generated_ids} });
        my $c = $t->request('POST', '/v1/completions',
            { model => $name, prompt => $prompt, max_tokens => 24, temperature => 0 });
        is($c->{json}{choices}[0]{text}, $d->{json}{content},
           "$name: /v1/completions text == CLI output");
        is($c->{json}{usage}{prompt_tokens}, scalar @{$cj->{prompt_ids}},
           "$name: same prompt tokenization");
    }
}

$t->stop;
$t->check_error_log;

done_testing();
