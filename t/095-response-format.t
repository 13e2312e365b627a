#!/usr/bin/perl
# response_format (json_object, json_schema strict and not) and the grammar
# extension field on /v1/completions, /v1/chat/completions and /execute:
# every constrained output parses and validates; bad grammars and
# unsupported schema keywords are 400s saying where.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new->start;
my ($st, $h, $ev);

my $schema = {
    type => 'object',
    properties => {
        name  => { type => 'string', minLength => 1, maxLength => 8 },
        age   => { type => 'integer', minimum => 0, maximum => 120 },
        color => { enum => [ 'red', 'green', 'blue' ] },
        tags  => { type => 'array', items => { type => 'string', maxLength => 4 },
                   maxItems => 2 },
    },
    required => [ 'name', 'age', 'color', 'tags' ],
    additionalProperties => JSON::PP::false,
};

sub valid_person {
    my ($text) = @_;
    my $v = eval { JSON::PP->new->decode($text) };
    return 0 unless ref $v eq 'HASH';
    return 0 unless join(',', sort keys %$v) eq 'age,color,name,tags';
    return 0 unless !ref $v->{name} && length($v->{name}) >= 1
        && length($v->{name}) <= 8;
    return 0 unless $v->{age} =~ /^\d+$/ && $v->{age} <= 120;
    return 0 unless $v->{color} =~ /^(red|green|blue)$/;
    return 0 unless ref $v->{tags} eq 'ARRAY' && @{$v->{tags}} <= 2;
    return !grep { ref $_ || length($_) > 4 } @{$v->{tags}};
}

# --- json_schema, both models, several seeds, chat and completions ------
for my $model ('tiny') {
    for my $seed (1 .. 10) {
        my $r = $t->request('POST', '/v1/chat/completions',
            { model => $model, messages => [ { role => 'user', content => 'Who?' } ],
              max_tokens => 400, temperature => 1, seed => $seed,
              response_format => { type => 'json_schema',
                  json_schema => { name => 'person', strict => JSON::PP::true,
                                   schema => $schema } } });
        is($r->{status}, 200, "$model seed $seed: chat json_schema 200")
            or diag($r->{body} // "");
        my $c = $r->{json}{choices}[0];
        ok(valid_person($c->{message}{content}),
           "$model seed $seed: output validates")
            or diag($c->{message}{content});
        is($c->{finish_reason}, 'stop', "$model seed $seed: stops when complete");
    }
}

# TinyStories-656K's 2048-token vocabulary has no "{": a 400 when nothing
# can start the output; a dead end later (json_object allows a leading
# space, then nothing) ends the choice with the text so far
my $r = $t->request('POST', '/v1/chat/completions',
    { model => 'q8', messages => [ { role => 'user', content => 'x' } ],
      response_format => { type => 'json_object' } });
is($r->{status}, 200, 'vocabulary without "{", after a space: 200')
    or diag($r->{body} // '');
is($r->{json}{choices}[0]{finish_reason}, 'stop', '... the choice stops');
like($r->{json}{choices}[0]{message}{content}, qr/^\s*$/, '... with the text so far');

# --- grammar dead end mid-generation (every token masked) ------------------
$r = $t->request('POST', '/v1/completions',
    { model => 'q8', prompt => 'x', max_tokens => 10, seed => 1,
      grammar => 'root ::= "a" "{"' });
is($r->{status}, 200, 'dead end after "a": 200') or diag($r->{body} // '');
is($r->{json}{choices}[0]{text}, 'a', '... text so far kept');
is($r->{json}{choices}[0]{finish_reason}, 'stop', '... finish_reason stop');
is($r->{json}{usage}{completion_tokens}, 1, '... one token counted');
($st, $h, $ev) = $t->stream('/v1/chat/completions',
    { model => 'q8', messages => [ { role => 'user', content => 'x' } ],
      max_tokens => 10, stream => JSON::PP::true,
      grammar => 'root ::= "a" "{"' });
is($st, 200, 'streamed dead end: 200');
ok(!(grep { $_->{event} && $_->{event} eq 'error' || ($_->{json} && $_->{json}{error}) } @$ev),
   '... no error in the stream');
is(join('', map { $_->{json}{choices}[0]{delta}{content} // '' }
        grep { $_->{json} && $_->{json}{choices} } @$ev), 'a', '... deltas: the text so far');
is((grep { $_->{json} && $_->{json}{choices} && $_->{json}{choices}[0]{finish_reason} } @$ev)[0]
       ->{json}{choices}[0]{finish_reason}, 'stop', '... finish_reason stop');
is($ev->[-1]{data}, '[DONE]', '... ends with [DONE]');
($st, $h, $ev) = $t->stream('/execute',
    { job_id => 'dead1', model => 'q8', prompt => 'x', max_tokens => 10,
      grammar => 'root ::= "a" "{"' });
my ($end) = grep { $_->{event} eq 'end' } @$ev;
is($end->{json}{stop_reason}, 'GRAMMAR_DEAD_END', '/execute: stop_reason GRAMMAR_DEAD_END');
is($end->{json}{tokens_out}, 1, '... after one token');
$r = $t->request('POST', '/v1/completions',
    { model => 'q8', prompt => 'x', grammar => 'root ::= "{}"' });
is($r->{status}, 400, 'grammar no token can start: 400');
like($r->{json}{error}{message}, qr/vocabulary can start/, '... says why');

$r = $t->request('POST', '/v1/completions',
    { model => 'tiny', prompt => 'Data:', max_tokens => 400, seed => 3,
      response_format => { type => 'json_schema',
          json_schema => { name => 'p', strict => JSON::PP::false, schema => $schema } } });
is($r->{status}, 200, 'completions json_schema (strict false) 200');
ok(valid_person($r->{json}{choices}[0]{text}), 'completions output validates');

# streaming: the deltas join into a valid document
($st, $h, $ev) = $t->stream('/v1/chat/completions',
    { model => 'tiny', messages => [ { role => 'user', content => 'x' } ],
      max_tokens => 400, seed => 9, stream => JSON::PP::true,
      response_format => { type => 'json_schema',
          json_schema => { name => 'person', schema => $schema } } });
is($st, 200, 'streamed json_schema 200');
my $text = join '', map { $_->{json}{choices}[0]{delta}{content} // '' }
    grep { $_->{json} } @$ev;
ok(valid_person($text), 'streamed output validates') or diag($text);

# --- pattern, format, oneOf ---------------------------------------------
my $shaped = {
    type => 'object',
    properties => {
        code => { type => 'string', pattern => '^[A-Z]{2}-\\d{3}(x|yz)?$' },
        day  => { type => 'string', format => 'date' },
        at   => { type => 'string', format => 'date-time' },
        id   => { type => 'string', format => 'uuid' },
        v    => { oneOf => [ { type => 'integer', minimum => 1, maximum => 5 },
                             { type => 'boolean' } ] },
    },
    required => [ qw(code day at id v) ],
    additionalProperties => JSON::PP::false,
};
sub valid_shaped {
    my ($text) = @_;
    my $v = eval { JSON::PP->new->decode($text) };
    return 0 unless ref $v eq 'HASH' && keys %$v == 5;
    my $date = qr/(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])/;
    my $time = qr/([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)/;
    return 0 unless $v->{code} =~ /^[A-Z]{2}-\d{3}(x|yz)?$/;
    return 0 unless $v->{day} =~ /^$date$/ && $v->{at} =~ /^${date}T$time$/;
    for my $d ($v->{day}, $v->{at}) {
        my ($y, $m, $dd) = $d =~ /^(\d{4})-(\d\d)-(\d\d)/;
        my $leap = ($y % 4 == 0 && $y % 100 != 0) || $y % 400 == 0;
        my $max = (31, $leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[$m - 1];
        return 0 if $dd > $max;
    }
    return 0 unless $v->{id} =~ /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    my $is_int = (!ref $v->{v} && $v->{v} =~ /^[1-5]$/) ? 1 : 0;
    my $is_bool = JSON::PP::is_bool($v->{v}) ? 1 : 0;
    return $is_int + $is_bool == 1;
}
for my $seed (1 .. 5) {
    $r = $t->request('POST', '/v1/chat/completions',
        { model => 'tiny', messages => [ { role => 'user', content => 'x' } ],
          max_tokens => 300, temperature => 1, seed => $seed,
          response_format => { type => 'json_schema',
              json_schema => { name => 'shaped', schema => $shaped } } });
    is($r->{status}, 200, "seed $seed: pattern/format/oneOf schema 200")
        or diag($r->{body} // '');
    ok(valid_shaped($r->{json}{choices}[0]{message}{content}),
       "seed $seed: pattern, formats and oneOf validate")
        or diag($r->{json}{choices}[0]{message}{content});
}

# --- json_object ---------------------------------------------------------
$r = $t->request('POST', '/v1/chat/completions',
    { model => 'tiny', messages => [ { role => 'user', content => 'x' } ],
      max_tokens => 300, seed => 5, response_format => { type => 'json_object' } });
is($r->{status}, 200, 'json_object 200');
my $content = $r->{json}{choices}[0]{message}{content};
if ($r->{json}{choices}[0]{finish_reason} eq 'stop') {
    my $v = eval { JSON::PP->new->decode($content) };
    is(ref $v, 'HASH', 'json_object output is a JSON object') or diag($content);
} else {
    like($content, qr/^\s?\{/, 'json_object output (cut by max_tokens) starts an object');
}

# --- grammar (GBNF) --------------------------------------------------------
$r = $t->request('POST', '/v1/completions',
    { model => 'tiny', prompt => 'Answer:', max_tokens => 20, seed => 1,
      grammar => "root ::= (\"yes\" | \"no\") \", \" [0-9]{2}" });
is($r->{status}, 200, 'grammar 200');
like($r->{json}{choices}[0]{text}, qr/^(yes|no), [0-9]{2}$/, 'grammar output');
is($r->{json}{choices}[0]{finish_reason}, 'stop', 'grammar complete: stop');

($st, $h, $ev) = $t->stream('/execute',
    { job_id => 'g1', prompt => 'Answer:', max_tokens => 20, seed => 2,
      grammar => "root ::= [a-c]{3} \"!\"" });
is($st, 200, '/execute with grammar 200');
my $out = join '', map { $_->{json}{t} } grep { $_->{event} eq 'token' } @$ev;
like($out, qr/^[a-c]{3}!$/, '/execute grammar output');

# --- errors ----------------------------------------------------------------
$r = $t->request('POST', '/v1/completions',
    { model => 'tiny', prompt => 'x', grammar => "root ::= \"a\"\nfoo ::= [b-" });
is($r->{status}, 400, 'bad grammar: 400');
like($r->{json}{error}{message}, qr/line 2, column 9/, '... with line and column');
is($r->{json}{error}{param}, 'grammar', '... param grammar');

$r = $t->request('POST', '/v1/chat/completions',
    { model => 'tiny', messages => [ { role => 'user', content => 'x' } ],
      response_format => { type => 'json_schema', json_schema => { name => 'x',
          schema => { type => 'object', properties => {
              d => { type => 'string', format => 'email' } } } } } });
is($r->{status}, 400, 'unsupported format: 400');
like($r->{json}{error}{message}, qr{/properties/d.*format 'email'}, '... names it and the pointer');
$r = $t->request('POST', '/v1/chat/completions',
    { model => 'tiny', messages => [ { role => 'user', content => 'x' } ],
      response_format => { type => 'json_schema', json_schema => { name => 'x',
          schema => { type => 'string', pattern => '^(a)\\1$' } } } });
is($r->{status}, 400, 'pattern with a backreference: 400');
like($r->{json}{error}{message}, qr{pattern: backreferences are not supported},
     '... names the regex feature');
$r = $t->request('POST', '/v1/chat/completions',
    { model => 'tiny', messages => [ { role => 'user', content => 'x' } ],
      response_format => { type => 'json_schema', json_schema => { name => 'x',
          schema => { type => 'number', minimum => 0.5 } } } });
is($r->{status}, 400, 'bounds on a number: 400');
like($r->{json}{error}{message}, qr{integers only}, '... says so');

$r = $t->request('POST', '/v1/chat/completions',
    { model => 'tiny', messages => [ { role => 'user', content => 'x' } ],
      response_format => { type => 'yaml' } });
is($r->{status}, 400, 'unknown response_format type: 400');

$r = $t->request('POST', '/v1/completions',
    { model => 'tiny', prompt => 'x', grammar => 'root ::= "a"',
      response_format => { type => 'json_object' } });
is($r->{status}, 400, 'grammar with json response_format: 400');

$r = $t->request('POST', '/execute',
    { job_id => 'g2', prompt => 'x', grammar => 'root ::= root "a"' });
is($r->{status}, 400, '/execute left-recursive grammar: 400');
like($r->{json}{errors}[0]{message}, qr/left-recursive/, '... says why');

$r = $t->request('POST', '/v1/completions',
    { model => 'tiny', prompt => 'x', max_tokens => 5,
      response_format => { type => 'text' } });
is($r->{status}, 200, 'response_format text: 200, unconstrained');

$t->stop;
$t->check_error_log;
done_testing();
