#!/usr/bin/perl
# Tools with a Llama 3 template: Meta's own tool prompt (the tools as JSON
# in the first user turn), forced calls written as {"name", "parameters"}
# and returned as tool_calls (streamed or not), and replies that are no
# call streamed as content.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model l3 path={{MODEL260K}} chat_template=llama3;
EOF2
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

my $tools = [ { type => 'function', function => {
    name => 'get_weather', description => 'Weather of a city',
    parameters => { type => 'object', additionalProperties => JSON::PP::false,
                    required => [ 'city' ],
                    properties => { city => { type => 'string', enum => [ 'Paris', 'Rome' ] } } } } } ];
my $msgs = [ { role => 'system', content => 'Be brief.' },
             { role => 'user', content => 'Weather in Paris?' } ];

my $r = $t->request('POST', '/v1/apply-template', { model => 'l3', tools => $tools, messages => $msgs });
is($r->{status}, 200, 'apply-template 200');
my $p = $r->{json}{prompt};
like($p, qr/^<\|start_header_id\|>system<\|end_header_id\|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief\.<\|eot_id\|>/,
     'the Llama 3 system header with tools');
# (Perl's hashes send the keys in any order: the tool is matched loosely)
like($p, qr/<\|start_header_id\|>user<\|end_header_id\|>\n\nGiven the following functions, .*"parameters": dictionary of argument name and its value\}\.Do not use variables\.\n\n\{\n    "(type|function)": /s,
     'the tools in the first user turn');
like($p, qr/\n        "name": "get_weather",?\n/, '... as tojson(indent=4) prints them');
like($p, qr/\n\}\n\nWeather in Paris\?<\|eot_id\|><\|start_header_id\|>assistant<\|end_header_id\|>\n\n$/,
     'then the question and the generation prompt');
unlike($p, qr/<tool_call>|<tools>/, 'no Hermes markup');

# forced: a named tool_choice through the grammar, several seeds
for my $seed (1 .. 4) {
    my $body = { model => 'l3', tools => $tools, messages => $msgs, max_tokens => 200,
                 temperature => 1, seed => $seed,
                 tool_choice => { type => 'function', function => { name => 'get_weather' } } };
    $r = $t->request('POST', '/v1/chat/completions', $body);
    is($r->{status}, 200, "seed $seed: 200") or diag($r->{body});
    my $c = $r->{json}{choices}[0];
    is($c->{finish_reason}, 'tool_calls', "seed $seed: finish_reason tool_calls");
    my $call = $c->{message}{tool_calls}[0];
    is($call->{function}{name}, 'get_weather', "seed $seed: the named function");
    my $args = eval { JSON::PP->new->decode($call->{function}{arguments}) };
    ok(ref $args eq 'HASH' && join(',', keys %$args) eq 'city'
       && $args->{city} =~ /^(Paris|Rome)$/, "seed $seed: arguments validate")
        or diag($call->{function}{arguments});
    ok(!defined $c->{message}{content}, "seed $seed: no content");

    my ($st, $h, $ev) = $t->stream('/v1/chat/completions', { %$body, stream => JSON::PP::true });
    my ($name, $a, $fin) = ('', '', '');
    for my $e (grep { $_->{json} && @{$_->{json}{choices}} } @$ev) {
        my $ch = $e->{json}{choices}[0];
        for my $tc (@{$ch->{delta}{tool_calls} // []}) {
            $name .= $tc->{function}{name} // '';
            $a .= $tc->{function}{arguments} // '';
        }
        ok(0, "seed $seed: no content streamed") if defined $ch->{delta}{content}
                                                   && length $ch->{delta}{content};
        $fin = $ch->{finish_reason} if $ch->{finish_reason};
    }
    is($name, 'get_weather', "seed $seed: streamed name");
    is($a, $call->{function}{arguments}, "seed $seed: streamed arguments == non-streamed");
    is($fin, 'tool_calls', "seed $seed: streamed finish_reason");
}

# auto: this story model writes no call; its text is content, streamed or not
my $body = { model => 'l3', tools => $tools, max_tokens => 12, temperature => 0,
             messages => [ { role => 'user', content => 'Tell me a story' } ] };
$r = $t->request('POST', '/v1/chat/completions', $body);
is($r->{status}, 200, 'auto: 200');
ok(!exists $r->{json}{choices}[0]{message}{tool_calls}, 'auto, no call written: no tool_calls');
my ($st, $h, $ev) = $t->stream('/v1/chat/completions', { %$body, stream => JSON::PP::true });
my $text = join '', map { $_->{json}{choices}[0]{delta}{content} // '' }
                    grep { $_->{json} && @{$_->{json}{choices}} } @$ev;
is($text, $r->{json}{choices}[0]{message}{content}, 'auto: streamed content == non-streamed');

# /v1/responses: a required call comes back as a function_call item
$r = $t->request('POST', '/v1/responses',
    { model => 'l3', input => 'Weather in Rome?', max_output_tokens => 200, seed => 3,
      temperature => 1, tool_choice => 'required',
      tools => [ { type => 'function', name => 'get_weather',
                   parameters => $tools->[0]{function}{parameters} } ] });
is($r->{status}, 200, 'responses, required: 200') or diag($r->{body});
my ($fc) = grep { $_->{type} eq 'function_call' } @{$r->{json}{output}};
is($fc->{name}, 'get_weather', 'responses: a function_call item');
my $fa = eval { JSON::PP->new->decode($fc->{arguments}) };
ok(ref $fa eq 'HASH' && ($fa->{city} // '') =~ /^(Paris|Rome)$/, '... its arguments validate')
    or diag($fc->{arguments});

# the template takes one call per assistant turn
$r = $t->request('POST', '/v1/chat/completions',
    { model => 'l3', tools => $tools, max_tokens => 4, messages => [
        { role => 'user', content => 'x' },
        { role => 'assistant', content => undef, tool_calls => [
            map { { id => "c$_", type => 'function',
                    function => { name => 'get_weather', arguments => '{"city":"Rome"}' } } } 1 .. 2 ] },
        { role => 'tool', tool_call_id => 'c1', content => '1' } ] });
is($r->{status}, 400, 'two calls in one Llama 3 turn: 400');
like($r->{json}{error}{message}, qr/one tool call/, '... saying why');

$t->stop;
$t->check_error_log;
done_testing();
