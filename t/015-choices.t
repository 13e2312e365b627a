#!/usr/bin/perl
# Several choices in one OpenAI request: n > 1 (completions and chat,
# streaming and not), completions prompt batches, echo, best_of; choice i
# samples with seed + i; the followers of a prompt take its KV blocks
# from the prefix cache.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}};
    starling_model q8 path={{MODELQ8}};
    starling_model one path={{MODEL260K}} max_seqs=1;
    starling_model long path={{MODEL260K}} ctx=8192;
    log_format choices 'choices cached=$starling_cached_tokens';
EOF2
        location /v1/ {
            starling openai;
            access_log {{PREFIX}}/logs/choices.log choices;
        }
        location /rt/ { starling openai model=long; starling_max_tokens 8000;
                        starling_request_timeout 60ms; }
        location /one/ { starling openai model=one; }
        location / { starling worker; }
EOF3

sub completion {
    my (%body) = @_;
    my $r = $t->request('POST', '/v1/completions',
                        { model => 'tiny', max_tokens => 8, %body });
    return $r;
}

# --- n = 3, non-streaming ------------------------------------------------
my $r = completion(prompt => 'Once upon a time', n => 3, temperature => 1,
                   seed => 40);
is($r->{status}, 200, 'n=3: 200');
my $j = $r->{json};
is(scalar @{$j->{choices}}, 3, 'three choices');
is_deeply([ map { $_->{index} } @{$j->{choices}} ], [0, 1, 2], 'indices 0..2');
is($j->{usage}{prompt_tokens}, 5, 'prompt counted once');
is($j->{usage}{completion_tokens}, 24, 'completion_tokens: all choices');
is($j->{usage}{total_tokens}, 29, 'total');

# choice i is what n=1 with seed + i gives
for my $i (0 .. 2) {
    my $one = completion(prompt => 'Once upon a time', temperature => 1,
                         seed => 40 + $i);
    is($j->{choices}[$i]{text}, $one->{json}{choices}[0]{text},
       "choice $i == n=1 with seed 40+$i");
}
my %distinct = map { $_->{text} => 1 } @{$j->{choices}};
ok(keys %distinct > 1, 'the choices differ (own seed streams)');

# greedy: every choice is the greedy continuation
my $g = completion(prompt => 'Once upon a time', temperature => 0, n => 2);
my $g1 = completion(prompt => 'Once upon a time', temperature => 0);
is($g->{json}{choices}[1]{text}, $g1->{json}{choices}[0]{text},
   'greedy: choice 1 == n=1');

# --- n = 3, streaming chat -------------------------------------------------
my $msgs = [ { role => 'user', content => 'Tell me a story' } ];
my $cj = $t->request('POST', '/v1/chat/completions',
    { model => 'q8', messages => $msgs, n => 3, max_tokens => 6,
      temperature => 0.9, seed => 5 })->{json};
is(scalar @{$cj->{choices}}, 3, 'chat n=3: three choices');
is($cj->{object}, 'chat.completion', 'chat object');

my ($st, $h, $ev) = $t->stream('/v1/chat/completions',
    { model => 'q8', messages => $msgs, n => 3, max_tokens => 6,
      temperature => 0.9, seed => 5, stream => JSON::PP::true,
      stream_options => { include_usage => JSON::PP::true } });
is($st, 200, 'chat stream n=3: 200');
is($ev->[-1]{data}, '[DONE]', 'ends with [DONE]');
my @chunks = map { $_->{json} } @$ev[0 .. $#$ev - 1];
ok(!grep({ !defined $_ } @chunks), 'every chunk is JSON');
my (%text, %role, %fin);
for my $c (@chunks) {
    for my $ch (@{$c->{choices}}) {
        my $i = $ch->{index};
        $role{$i}++ if defined $ch->{delta}{role};
        $text{$i} .= $ch->{delta}{content} // '';
        $fin{$i} = $ch->{finish_reason} if defined $ch->{finish_reason};
    }
}
is_deeply([ sort keys %role ], [0, 1, 2], 'a role delta per choice');
is_deeply([ sort keys %fin ], [0, 1, 2], 'a finish_reason per choice');
for my $i (0 .. 2) {
    is($text{$i}, $cj->{choices}[$i]{message}{content},
       "streamed choice $i == non-streamed choice $i");
}
is($chunks[-1]{usage}{completion_tokens},
   $cj->{usage}{completion_tokens}, 'stream usage counts all choices');
is_deeply($chunks[-1]{choices}, [], 'usage chunk has no choices');

# --- prompt batches ----------------------------------------------------------
$r = completion(prompt => [ 'Once upon a time', 'The dog' ], n => 2,
                temperature => 1, seed => 9);
is($r->{status}, 200, 'batch of 2 prompts, n=2: 200');
$j = $r->{json};
is(scalar @{$j->{choices}}, 4, 'four choices');
my $dog = completion(prompt => 'The dog', temperature => 1, seed => 11);
is($j->{choices}[2]{text}, $dog->{json}{choices}[0]{text},
   'choice 2 is prompt 1 with seed + 2');
is($j->{usage}{prompt_tokens}, 5 + $dog->{json}{usage}{prompt_tokens},
   'prompt_tokens: every prompt once');

$r = completion(prompt => [ [1, 400, 500], [1, 300] ], temperature => 0);
is(scalar @{$r->{json}{choices}}, 2, 'batch of token arrays');
is($r->{json}{usage}{prompt_tokens}, 5, 'their tokens counted');

$r = completion(prompt => [ 'a', [1, 999999] ]);
is($r->{status}, 400, 'batch: id out of the vocabulary: 400');
like($r->{json}{error}{message}, qr/prompt\[1\]/, '... naming the prompt');

# --- echo, best_of -------------------------------------------------------------
$r = completion(prompt => 'Once upon a time', echo => JSON::PP::true,
                temperature => 0);
like($r->{json}{choices}[0]{text}, qr/^Once upon a time./s,
     'echo: the prompt, then the completion');
is($r->{json}{choices}[0]{text}, 'Once upon a time' . $g1->{json}{choices}[0]{text},
   'echo text == prompt + greedy text');
($st, $h, $ev) = $t->stream('/v1/completions',
    { model => 'tiny', prompt => 'Once upon a time', max_tokens => 8,
      echo => JSON::PP::true, temperature => 0, stream => JSON::PP::true });
my $streamed = join '', map { $_->{json}{choices}[0]{text} // '' }
                        @$ev[0 .. $#$ev - 1];
is($streamed, $r->{json}{choices}[0]{text}, 'streamed echo == non-streamed');
$r = completion(prompt => [ [1, 400, 500] ], echo => JSON::PP::true,
                temperature => 0, max_tokens => 1);
ok(length $r->{json}{choices}[0]{text} > 0, 'echo of token ids: their text');

$r = completion(prompt => 'x', n => 2, best_of => 2);
is($r->{status}, 200, 'best_of = n accepted');
$r = completion(prompt => 'x', n => 2, best_of => 3);
is($r->{status}, 400, 'best_of > n: 400');
like($r->{json}{error}{message}, qr/best_of/, '... saying best_of');

# echo + logprobs: the prompt's tokens first, the first one null
$r = completion(prompt => 'Once upon a time', echo => JSON::PP::true,
                logprobs => 2, temperature => 0, max_tokens => 4);
is($r->{status}, 200, 'echo with logprobs: 200') or diag($r->{body});
my $elp = $r->{json}{choices}[0]{logprobs};
my $n_p = $r->{json}{usage}{prompt_tokens};
my $n_c = $r->{json}{usage}{completion_tokens};
is(scalar @{$elp->{tokens}}, $n_p + $n_c, '... one entry per prompt and completion token');
is(scalar @{$elp->{token_logprobs}}, $n_p + $n_c, '... as many token_logprobs');
ok(!defined $elp->{token_logprobs}[0] && !defined $elp->{top_logprobs}[0],
   "... the first prompt token's logprob and top_logprobs are null");
ok(!(grep { !defined $_ || $_ > 0 } @{$elp->{token_logprobs}}[1 .. $#{$elp->{token_logprobs}}]),
   '... every other logprob a number <= 0');
ok(!(grep { ref $_ ne 'HASH' || keys %$_ < 1 || keys %$_ > 2 }
      @{$elp->{top_logprobs}}[1 .. $#{$elp->{top_logprobs}}]),
   '... top_logprobs objects of at most 2');
my @off = @{$elp->{text_offset}};
ok($off[0] == 0 && !(grep { $off[$_] < $off[$_ - 1] } 1 .. $#off)
   && $off[-1] <= length $r->{json}{choices}[0]{text},
   '... text_offset from 0, non-decreasing, within the text');
my $plain = completion(prompt => 'Once upon a time', logprobs => 2,
                       temperature => 0, max_tokens => 4);
is_deeply([ @{$elp->{token_logprobs}}[$n_p .. $n_p + $n_c - 1] ],
          $plain->{json}{choices}[0]{logprobs}{token_logprobs},
          '... the completion part equals the same request without echo');
($st, $h, $ev) = $t->stream('/v1/completions',
    { model => 'tiny', prompt => 'Once upon a time', max_tokens => 4,
      echo => JSON::PP::true, logprobs => 2, temperature => 0,
      stream => JSON::PP::true });
is_deeply($ev->[0]{json}{choices}[0]{logprobs}{token_logprobs},
          [ @{$elp->{token_logprobs}}[0 .. $n_p - 1] ],
          'streamed: the echo chunk carries the prompt logprobs');
$r = completion(prompt => 'x', n => 65);
is($r->{status}, 400, 'n = 65: 400');

# --- prefill once: the followers share the leader's blocks -------------------------
my $hl = $t->request('GET', '/health')->{json};
my $bt = $hl->{kv_block_tokens};
ok($bt, "KV blocks of $bt tokens");
my $long = join ' ', ('The little bird sang a song in the tall tree.') x 6;
$r = completion(prompt => $long, n => 3, temperature => 1, seed => 1,
                max_tokens => 2);
my $pt = $r->{json}{usage}{prompt_tokens};
cmp_ok($pt, '>', 2 * $bt, "prompt of $pt tokens spans full blocks");
is($r->{json}{usage}{prompt_tokens_details}{cached_tokens}, 0,
   'usage: a new prompt, nothing cached for the leader');
# a later request on the same connection-less worker: ours is logged
$t->request('GET', '/v1/models');
open my $fh, '<', "$t->{prefix}/logs/choices.log" or die "choices.log: $!";
my @log = grep { /cached=\d/ } <$fh>;
close $fh;
my ($cached) = $log[-1] =~ /cached=(\d+)/;
my $full = int(($pt - 1) / $bt) * $bt;
cmp_ok($cached, '>=', 2 * $full,
       "followers took >= 2 x $full prompt tokens from the cache ($cached)");

# --- ends: the client leaves, the request timeout, the queue timeout ------------
for my $round (1 .. 4) {
    my $s = $t->stream_open('/v1/completions',
        { model => 'tiny', prompt => 'Once upon a time', n => 3,
          max_tokens => 200, stream => JSON::PP::true });
    $s->next_event(10) for 1 .. $round * 3;
    $s->close;
}
$r = completion(prompt => 'Once upon a time', n => 2, temperature => 0);
is($r->{status}, 200, 'serving after clients left n=3 streams');

$r = $t->request('POST', '/rt/completions',
    { prompt => 'Once upon a time', n => 3,
      max_tokens => 8000, ignore_eos => JSON::PP::true });
is($r->{status}, 200, 'request timeout, n=3: 200');
is_deeply([ map { $_->{finish_reason} } @{$r->{json}{choices}} ],
          [ 'length', 'length', 'length' ], '... every choice cut: length');
cmp_ok($r->{json}{usage}{completion_tokens}, '<', 3 * 8000, '... cut short');

($st, $h, $ev) = $t->stream('/rt/completions',
    { prompt => 'Once upon a time', n => 3,
      max_tokens => 8000, ignore_eos => JSON::PP::true,
      stream => JSON::PP::true });
is($ev->[-1]{data}, '[DONE]', 'request timeout, n=3 stream: [DONE]');
my %cut = map { $_->{json}{choices}[0]{index} => $_->{json}{choices}[0]{finish_reason} }
          grep { $_->{json} && @{$_->{json}{choices}}
                 && defined $_->{json}{choices}[0]{finish_reason} } @$ev;
is_deeply(\%cut, { 0 => 'length', 1 => 'length', 2 => 'length' },
          '... each choice ends once, length');

# one sequence slot: the choices take turns
$r = $t->request('POST', '/one/completions',
    { prompt => 'Once upon a time', n => 3, max_tokens => 4,
      temperature => 1, seed => 40 });
is($r->{status}, 200, 'n=3 through one slot: 200') or diag($r->{body});
my $many = completion(prompt => 'Once upon a time', n => 3, max_tokens => 4,
                      temperature => 1, seed => 40);
is_deeply([ map { $_->{text} } @{$r->{json}{choices}} ],
          [ map { $_->{text} } @{$many->{json}{choices}} ],
          '... the same choices as with many slots');

$t->stop;
$t->check_error_log;
done_testing();
